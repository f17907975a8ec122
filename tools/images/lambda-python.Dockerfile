# An offline python3.13 Lambda-like image for `sam local invoke --invoke-image spotmap/lambda-python:3.13
# --skip-pull-image` (built by `tools/images/build lambda`; no registry is needed, none is reachable).
#
# SAM layers its Runtime Interface Emulator onto the image it is given (/var/rapid/aws-lambda-rie as
# the entry point) and mounts the built function at /var/task. The emulator serves the Runtime API and
# starts /var/runtime/bootstrap with _HANDLER set to the function's Handler, as Lambda starts a custom
# runtime: the bootstrap below runs the AWS Lambda Runtime Interface Client (awslambdaric), which
# polls that API and calls the handler - what the public.ecr.aws/lambda/python:3.13 image does.
# https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html
# https://docs.aws.amazon.com/lambda/latest/dg/python-image.html#python-image-clients
ARG BASE_IMAGE=spotmap/python:3.13-slim
FROM ${BASE_IMAGE}

# the Lambda runtime's own variables (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html)
ENV LAMBDA_TASK_ROOT=/var/task \
    LAMBDA_RUNTIME_DIR=/var/runtime \
    LANG=C.UTF-8 \
    TZ=:/etc/localtime \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN pip install --quiet awslambdaric \
    && mkdir -p /var/task /var/runtime /opt/python \
    && printf '%s\n' \
        '#!/bin/sh' \
        '# the function code first on the path, then layers (/opt/python), as in the Lambda runtime' \
        'export PYTHONPATH="/var/task:/opt/python${PYTHONPATH:+:$PYTHONPATH}"' \
        'cd /var/task' \
        'exec python -m awslambdaric "$_HANDLER"' \
        > /var/runtime/bootstrap \
    && chmod 0755 /var/runtime/bootstrap \
    && python -c "import awslambdaric"

WORKDIR /var/task
