"""petseg: binary pet segmentation on Oxford-IIIT Pet, UNet vs ResNet34-UNet, as a DVC pipeline.

`petseg.cli` runs the commands; `petseg.stages` are the pipeline's stages, `petseg.lib` the library they call,
and `petseg.tools` the commands no stage runs. The version is the installed distribution's (pyproject.toml).
"""
