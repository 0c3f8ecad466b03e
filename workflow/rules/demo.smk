if config["data"]["demo"]:

    rule demo_data:
        """Generate the demo collections in the native formats and folder layouts of the real downloads."""
        output:
            csvs=cbis_csvs(),
            ics=ddsm_inputs(),
            mias_info=f"{config['data']['mias']}/Info.txt",
            vindr=listed_inputs("vindr"),
            own=listed_inputs("own"),
        log:
            "logs/demo_data.log",
        benchmark:
            "benchmarks/demo_data.tsv"
        conda:
            "../../envs/mammo.yaml"
        threads: 2
        resources:
            mem_mb=1500,  # peak RSS 1.0 GB
            runtime=30,
        params:
            demo=config.get("demo", {}),
            roots=[config["data"][key] for key in ("cbis_ddsm", "ddsm", "mias")],
            vindr_root=lambda wildcards, output: (
                os.path.dirname(output.vindr[0]) if output.vindr else None
            ),
            own_root=lambda wildcards, output: (
                os.path.dirname(output.own[0]) if output.own else None
            ),
        script:
            "../scripts/demo_data.py"
