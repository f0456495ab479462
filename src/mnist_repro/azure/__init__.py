"""Train on Azure Machine Learning (SDK v2): ``python -m mnist_repro azure ...``.

- ``workspace``: the local inputs (config.json, params ``azure:``, AML_COMPUTE_CLUSTER_*);
- ``entities``: the compute, environment, data asset and jobs, built offline (dry-run specs);
- ``service``: every call to the service through one MLClient (and the permissions API);
- ``permissions``: which RBAC actions the user lacks, and the role to ask for (pure);
- ``cli``: the ``azure`` subcommand's actions;
- ``job``: the train stage's Azure ML backend, and what a sweep trial runs in the job.

Only ``service`` and ``entities`` import ``azure.ai.ml`` and ``azure.identity``, and only
when an Azure action runs; the local pipeline never needs them (the optional ``azure`` extra).
"""
