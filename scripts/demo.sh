#!/usr/bin/env bash
# `make demo`: the main job on a fresh SQLite ledger. A few operations recorded by hand, then a
# simulated fleet ingested, listed with filters, one history, an audit, and the analytics export.
set -euo pipefail

mkdir -p .demo
rm -rf .demo/ledger.db .demo/ledger.db-* .demo/exports
export LEDGER_DATABASE_URL="sqlite:///.demo/ledger.db"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
quiet() { "$@" >/dev/null; }

ledger init

say "Recording operations by hand, as four services would"
# Dataproc-style: a cluster create that succeeds, with progress along the way.
dp=projects/acme/regions/us-east1/operations/9f3e1c2a-dp-create
quiet ledger create "$dp" --verb create --target projects/acme/regions/us-east1/clusters/etl --api-version v1 --at 2026-11-21T09:00:00Z
quiet ledger progress "$dp" --detail "provisioning 4 workers" --percent 30 --at 2026-11-21T09:01:10Z
quiet ledger succeed "$dp" --at 2026-11-21T09:04:02.250Z
# Cloud Storage-style: its own metadata type, per-API lifecycle field names, a metadata patch.
gcs=projects/_/buckets/media-archive/operations/C894F35J
quiet ledger create "$gcs" --verb restore --target projects/_/buckets/media-archive --lifecycle-fields per-api \
  --metadata '{"@type": "type.googleapis.com/google.storage.control.v2.BulkRestoreObjectsMetadata", "commonMetadata": {"type": "bulk-restore"}}' \
  --at 2026-11-21T09:10:00Z
quiet ledger progress "$gcs" --detail "restored 1200 of 5000 objects" --percent 24 --at 2026-11-21T09:20:00Z \
  --metadata-patch '{"commonMetadata": {"progressPercent": 24}}'
# Batch-style: a job that fails with a structured error detail.
batch=projects/acme/locations/us-central1/operations/op-batch-5521
quiet ledger create "$batch" --verb create --target projects/acme/locations/us-central1/jobs/nightly-render --at 2026-11-21T09:30:00Z
quiet ledger fail "$batch" --code RESOURCE_EXHAUSTED --message "quota 'CPUS' exceeded in us-central1" --at 2026-11-21T09:31:15Z \
  --details '[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA_EXCEEDED", "domain": "compute.googleapis.com"}]'
# Vertex-style: a user cancels a training job; the service then ends it as CANCELLED.
vx=projects/acme/locations/europe-west4/operations/4471093366028353536
quiet ledger create "$vx" --verb train --target projects/acme/locations/europe-west4/customJobs/8812 --at 2026-11-21T10:00:00Z
quiet ledger cancel "$vx" --at 2026-11-21T10:13:30Z
quiet ledger fail "$vx" --code CANCELLED --message "cancelled by user" --at 2026-11-21T10:13:41Z
ledger list --format table

say "The Cloud Storage restore as Google's clients would read it (exact Operation JSON)"
ledger get "$gcs"
say "The Dataproc operation as it was at 09:02 (time travel)"
ledger get "$dp" --as-of 2026-11-21T09:02:00Z
say "A rule is refused: the Batch job is done"
ledger progress "$batch" --detail "late" || true

say "Ingesting a simulated fleet: 3,000 operations from four services, about 12,000 events"
ledger simulate 3000 --seed 42 > .demo/fleet.jsonl
ledger ingest .demo/fleet.jsonl
say "Ingesting the same file again changes nothing"
ledger ingest .demo/fleet.jsonl

say "Failed for lack of quota in one region (AIP-160 filter), newest first"
ledger list --filter 'error.code = RESOURCE_EXHAUSTED AND name = "projects/*/us-east1/*"' --format table --page-size 5
say "Vertex-like training jobs still running, by a path in their own metadata"
ledger list --filter 'done = false AND metadata.trainingSteps > 9000' --format table --page-size 5
name=$(ledger list --filter 'state = CANCELLED AND verb = "train"' --page-size 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["operations"][0]["name"])')
say "One cancelled training job's full history: versions, positions, chained hashes"
ledger history "$name" --format jsonl

say "Audit: every history re-checked (rules, versions, hash chains) and the views compared with the log"
ledger audit --format text
say "A digest to keep elsewhere; verify proves the log up to it is unchanged"
ledger digest > .demo/digest.json
cat .demo/digest.json
ledger verify --digest @.demo/digest.json

say "Analytics: operations as flat rows (first lines of the CSV)"
ledger export --what operations --format csv --out .demo/operations.csv
head -4 .demo/operations.csv
say "Incremental event export into a directory: the manifest records each file's positions"
ledger export --what events --out .demo/exports/
ledger export --what events --out .demo/exports/
cat .demo/exports/manifest.json
echo >&2
echo "The ledger is at .demo/ledger.db; try: LEDGER_DATABASE_URL=sqlite:///.demo/ledger.db .venv/bin/ledger list --format table" >&2
