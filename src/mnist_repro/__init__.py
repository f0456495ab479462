"""The Azure ML "train an image classifier on MNIST with scikit-learn" tutorial, reproducibly."""

__version__ = "0.1.0"
