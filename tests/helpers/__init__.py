"""What the tests share (``tests/`` is on pytest's pythonpath: ``from helpers.x import y``).

- :mod:`helpers.dataset`: the one fake dataset, four MNIST-named idx files of drawn digits;
- :mod:`helpers.params`: the one params writer (the repo's params.yaml plus dotted overrides);
- :mod:`helpers.repo`: run the real pipeline in a throwaway copy of the repository;
- :mod:`helpers.http_server`: a local HTTP server on 127.0.0.1 for the download stage;
- :mod:`helpers.azure`: the Azure ML fakes at the MLClient boundary, and the Azure test repo.
"""
