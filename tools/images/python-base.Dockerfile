# An offline stand-in for python:3.13-slim: Debian 13 (trixie) from debootstrap, imported as the
# image spotmap/debian:trixie-minbase by tools/images/build, with a venv in /usr/local that provides
# `python` and `pip` on PATH as the official image does. No registry is needed to build it.
FROM spotmap/debian:trixie-minbase

# the host's CA bundle, so that pip (and the AWS SDK) verify TLS as the official image would
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv /usr/local/python \
    && python --version && pip --version

CMD ["python3"]
