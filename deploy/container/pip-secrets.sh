# Sourced by the Dockerfile's pip steps, bind-mounted and never copied into a layer: the build secrets
# that were given become pip's config file (index settings) and the CA bundle pip trusts.
if [ -f /run/secrets/pip.conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip.conf; fi
if [ -f /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi
