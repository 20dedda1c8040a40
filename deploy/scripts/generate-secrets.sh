#!/usr/bin/env bash
# Prints, as YAML on stdout, the Secrets Zhucun's manifests expect and no operator creates:
#
#   zhucun-db-<service>  (dispatch, attendance, assessment, projections)
#       type kubernetes.io/basic-auth, keys username, password (CloudNativePG sets the managed
#       role's password from them) and uri (the service's ZHUCUN_POSTGRES__DSN)
#   zhucun-db-auditor    the read-only role of `zhucun verify` and `zhucun status`:
#       username, password and <database>-uri for each of the four databases
#   zhucun-auth          (--jwt-secret only) key jwt-secret: the HS256 secret of the dev overlay
#
# Passwords are 64 hex characters from /dev/urandom (safe inside a URI unescaped). Strimzi
# makes the Kafka credentials (one Secret per KafkaUser) and both CAs itself.
#
#   deploy/scripts/generate-secrets.sh --namespace zhucun | kubectl create -f -
#
# `kubectl create` refuses to overwrite: running it again never rotates a password by
# accident. To rotate, apply a new Secret and restart the service (docs/operations.md).
# Keep the output out of git, or encrypt it (SOPS, Sealed Secrets) before committing it.
set -euo pipefail

namespace=""
jwt_secret=0
pg_host="zhucun-pg-rw"
while [ $# -gt 0 ]; do
    case "$1" in
        --namespace) namespace="$2"; shift 2 ;;
        --jwt-secret) jwt_secret=1; shift ;;
        --postgres-host) pg_host="$2"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

random_password() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

metadata() {  # name
    echo "metadata:"
    echo "  name: $1"
    if [ -n "$namespace" ]; then echo "  namespace: $namespace"; fi
    echo "  labels:"
    echo "    app.kubernetes.io/part-of: zhucun"
}

uri() {  # role password database
    echo "postgresql://$1:$2@${pg_host}:5432/$3?sslmode=verify-full"
}

for service in dispatch attendance assessment projections; do
    password="$(random_password)"
    echo "---"
    echo "apiVersion: v1"
    echo "kind: Secret"
    metadata "zhucun-db-$service"
    # CloudNativePG applies a password change in a labelled Secret at once.
    echo "    cnpg.io/reload: \"true\""
    echo "type: kubernetes.io/basic-auth"
    echo "stringData:"
    echo "  username: $service"
    echo "  password: $password"
    echo "  uri: \"$(uri "$service" "$password" "$service")\""
done

password="$(random_password)"
echo "---"
echo "apiVersion: v1"
echo "kind: Secret"
metadata "zhucun-db-auditor"
echo "    cnpg.io/reload: \"true\""
echo "type: kubernetes.io/basic-auth"
echo "stringData:"
echo "  username: auditor"
echo "  password: $password"
for database in dispatch attendance assessment projections; do
    echo "  $database-uri: \"$(uri auditor "$password" "$database")\""
done

if [ "$jwt_secret" = 1 ]; then
    echo "---"
    echo "apiVersion: v1"
    echo "kind: Secret"
    metadata "zhucun-auth"
    echo "type: Opaque"
    echo "stringData:"
    echo "  jwt-secret: $(random_password)"
fi
