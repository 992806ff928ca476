#!/usr/bin/env bash
# `make demo`: a fresh SQLite ledger, a realistic mix of operations from several services, and a look
# at a few of them and one full history.
set -euo pipefail

mkdir -p .demo
rm -f .demo/ledger.db .demo/ledger.db-*
export LEDGER_DATABASE_URL="sqlite:///.demo/ledger.db"
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
quiet() { "$@" >/dev/null; }

ledger init

say "Recording operations from four services"
# Dataproc-style: a cluster create that succeeds, with progress along the way.
dp=projects/acme/regions/us-east1/operations/9f3e1c2a-dp-create
quiet ledger create "$dp" --verb create --target projects/acme/regions/us-east1/clusters/etl --api-version v1 --at 2026-11-21T09:00:00Z
quiet ledger progress "$dp" --detail "provisioning 4 workers" --percent 30 --at 2026-11-21T09:01:10Z
quiet ledger progress "$dp" --detail "running init actions" --percent 80 --at 2026-11-21T09:03:40.5Z
quiet ledger succeed "$dp" --at 2026-11-21T09:04:02.250Z \
  --response '{"@type": "type.googleapis.com/google.protobuf.Empty"}'

# Cloud Storage-style: a bucket operation with its own metadata type and per-API lifecycle fields.
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

# Vertex-style: a training job a user cancels; the service then ends it as CANCELLED.
vx=projects/acme/locations/europe-west4/operations/4471093366028353536
quiet ledger create "$vx" --verb train --target projects/acme/locations/europe-west4/customJobs/8812 --api-version v1beta1 --at 2026-11-21T10:00:00Z
quiet ledger progress "$vx" --detail "epoch 3/20" --percent 15 --at 2026-11-21T10:12:00Z
quiet ledger cancel "$vx" --at 2026-11-21T10:13:30Z
quiet ledger fail "$vx" --code CANCELLED --message "cancelled by user" --at 2026-11-21T10:13:41Z

# A mistaken create, then deleted: it leaves get, its history stays.
quiet ledger create operations/typo-1 --verb create --at 2026-11-21T10:20:00Z
quiet ledger delete operations/typo-1 --at 2026-11-21T10:21:00Z
echo "recorded 5 operations, 16 events" >&2

say "A succeeded Dataproc cluster create"
ledger get "$dp"
say "A failed Batch job, with its error detail"
ledger get "$batch"
say "A cancelled Vertex training job"
ledger get "$vx"
say "The Cloud Storage restore, still running, per-API metadata"
ledger get "$gcs"
say "The Dataproc operation as of 09:02 (time travel)"
ledger get "$dp" --as-of 2026-11-21T09:02:00Z
say "The Vertex job's full history: version, position, recordedAt and chained hash"
ledger history "$vx" --format jsonl
say "Every operation, as a table"
ledger list --format table
say "Filtered (AIP-160): finished operations that did not succeed"
ledger list --filter 'done = true AND -response:*' --format table
say "The fleet as of 09:20: what was running then"
ledger list --as-of 2026-11-21T09:20:00Z --filter 'state = RUNNING' --format table
say "A rule is refused: the Batch job is done"
ledger progress "$batch" --detail "late" || true
say "The deleted operation is gone from get, its history kept"
ledger get operations/typo-1 || true
ledger history operations/typo-1 --format jsonl
