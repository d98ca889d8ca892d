#!/usr/bin/env bash
# Make a local CA and a certificate for 127.0.0.1/localhost signed by it, in DIR (once).
set -euo pipefail
dir=${1:?usage: tls-cert.sh DIR}
mkdir -p "$dir"
[ -f "$dir/cert.pem" ] && [ -f "$dir/key.pem" ] && [ -f "$dir/ca.pem" ] && exit 0
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=Portcullis local CA" -keyout ca-key.pem -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=127.0.0.1" -keyout key.pem -out cert.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
  -extfile ext.cnf -out cert.pem 2>/dev/null
rm -f cert.csr ext.cnf ca.srl
echo "TLS certificate for 127.0.0.1 in $dir (trust $dir/ca.pem)"
