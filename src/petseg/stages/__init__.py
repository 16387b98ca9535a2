"""One module per dvc.yaml stage: read the params, call the library, write the outputs."""
