"""skinexp: config-driven skin-lesion segmentation experiments (Hydra configs, Keras U-Nets, MLflow tracking).

Run `python -m skinexp --help`. Importing the package loads nothing heavy; TensorFlow and MLflow are
imported by the commands that need them.
"""

__version__ = "0.1.0"
