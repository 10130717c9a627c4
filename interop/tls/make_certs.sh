#!/usr/bin/env bash
# Make a throwaway CA, a server certificate for localhost/127.0.0.1 and a client
# certificate (CN=orders-service) with the openssl CLI, in DIR. Nothing here is committed.
# Usage: interop/tls/make_certs.sh DIR
set -eu
D=$1
mkdir -p "$D"
cd "$D"
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Warren interop CA" \
  -keyout ca.key -out ca.pem
q openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.pem
q openssl req -newkey rsa:2048 -nodes -subj "/CN=orders-service" -keyout client.key -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile client.ext -out client.pem
