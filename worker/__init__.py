"""spotmap's worker: the container program (`python -m worker`) and the processor API (`worker.api`).

Importing this package is cheap (the image's HEALTHCHECK does it); `worker.runner` loads the rest."""
