"""Train on Azure Machine Learning (SDK v2): ``python -m mnist_repro remote ...``.

Only the modules that talk to Azure import ``azure.ai.ml`` and ``azure.identity``, and only
when a remote command runs; the local pipeline never needs them (the optional ``azure`` extra).
"""
