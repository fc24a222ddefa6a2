#!/usr/bin/env bash
# Remakes k8s/nginx-configmap.yaml from conf/nginx.conf.example: the
# ConfigMap the nginx pods take their template from (the entry point
# fills in backends, secrets, ports and paths, as `make run` does).  Run
# it after changing the example; t/deploy.t fails until then.
#
# usage: k8s/nginx-configmap.sh [OUT]      (default: k8s/nginx-configmap.yaml)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/k8s/nginx-configmap.yaml}
conf=$top/conf/nginx.conf.example

{
    echo "# Made by k8s/nginx-configmap.sh from conf/nginx.conf.example: edit"
    echo "# that file and rerun the script, or edit this one for your cluster."
    echo "apiVersion: v1"
    echo "kind: ConfigMap"
    echo "metadata:"
    echo "  name: audex-nginx-conf"
    echo "  labels:"
    echo "    app.kubernetes.io/name: audex"
    echo "    app.kubernetes.io/component: nginx"
    echo "data:"
    echo "  nginx.conf: |2+"
    sed -e 's/^\(.\)/    \1/' "$conf"
} > "$out.tmp"
mv "$out.tmp" "$out"
