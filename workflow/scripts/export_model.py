from mammo.runner import logged

with logged(snakemake.log[0], "export_model"):
    from mammo.inference import export_onnx

    export_onnx(snakemake.input.model, snakemake.output.onnx)
