"""petseg: binary pet segmentation on Oxford-IIIT Pet, UNet vs ResNet34-UNet, as a DVC pipeline."""

__version__ = "0.1.0"
