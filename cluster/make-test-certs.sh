#!/usr/bin/env bash
# A throwaway certificate authority and certificates for TLS between coordinator and workers,
# for tests and for the README's example. Never use these keys for anything real.
#   cluster/make-test-certs.sh DIR [NAME...]
# Writes DIR/ca.pem (+ ca.key), and for each NAME (default: coordinator worker) NAME.pem and
# NAME.key signed by that CA, valid for localhost and 127.0.0.1 (add hosts with HOSTS="a,b"),
# plus DIR/other-ca.pem: a second CA that signs nothing here (a "wrong CA" for tests).
# DAYS sets their validity (default 825); EXPIRED=1 makes them expired in 2020 already.
# Needs openssl (Debian: openssl).
set -euo pipefail
dir="${1:?usage: cluster/make-test-certs.sh DIR [NAME...]}"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(coordinator worker)
command -v openssl >/dev/null || { echo "make-test-certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
days="${DAYS:-825}"
mkdir -p "$dir"
cd "$dir"
san="DNS:localhost,IP:127.0.0.1"
IFS=',' read -ra extra <<< "${HOSTS:-}"
for h in "${extra[@]}"; do
    [[ "$h" =~ ^[0-9.]+$ ]] && san="$san,IP:$h" || san="$san,DNS:$h"
done
quiet() { "$@" 2>/dev/null >/dev/null || { echo "make-test-certs: $* failed" >&2; "$@"; exit 1; }; }
make_ca() {
    # A CA outlives the certificates it signs (at least ten years).
    quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$((days > 3650 ? days : 3650))" \
        -subj "/CN=$2" -keyout "$1.key" -out "$1.pem"
}
make_ca ca "l2pd test CA"
make_ca other-ca "l2pd other test CA"
rm -f other-ca.key
# Sign with `openssl ca` (it takes explicit validity dates, which an expired certificate needs)
# from a scratch database that is removed afterwards.
db="$(mktemp -d)"
trap 'rm -rf "$db"' EXIT
touch "$db/index.txt"
echo 01 > "$db/serial"
cat > "$db/ca.cnf" <<CONF
[ca]
default_ca = l2pd
[l2pd]
database = $db/index.txt
new_certs_dir = $db
serial = $db/serial
default_md = sha256
policy = anything
unique_subject = no
x509_extensions = ext
[anything]
commonName = supplied
[ext]
subjectAltName = $san
extendedKeyUsage = serverAuth,clientAuth
CONF
validity=(-days "$days")
[ "${EXPIRED:-0}" = 1 ] && validity=(-startdate 20200101000000Z -enddate 20200102000000Z)
for name in "${names[@]}"; do
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
        -keyout "$name.key" -out "$db/$name.csr"
    quiet openssl ca -batch -notext -config "$db/ca.cnf" -cert ca.pem -keyfile ca.key -in "$db/$name.csr" -out "$name.pem" \
        "${validity[@]}"
    chmod 600 "$name.key"
done
rm -f ca.srl
echo "make-test-certs: wrote $dir/ca.pem, other-ca.pem and ${names[*]/%/.pem} (+ .key)" >&2
