"""ljvae_core: Monte Carlo simulation of Lennard-Jones particles under gravity, datasets,
representations and variational autoencoders, without any user interface.

Submodules are imported on demand so that ``import ljvae_core`` stays cheap; TensorFlow is only
loaded by the modules that train or run models.
"""

__version__ = "0.1.0"
