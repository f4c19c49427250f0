#!/usr/bin/env bash
# Build the image and deploy the daily Cloud Run Job and its Cloud Scheduler trigger.
# Usage: deploy/deploy.sh PROJECT_ID [REGION]      (needs gcloud, authenticated; nothing here runs it in CI)
set -euo pipefail
PROJECT_ID=${1:?usage: deploy/deploy.sh PROJECT_ID [REGION]}
REGION=${2:-asia-south1}
IMAGE="${REGION}-docker.pkg.dev/${PROJECT_ID}/strategy-engine/strategy-engine:$(git rev-parse --short HEAD)"
cd "$(dirname "$0")/.."

render() { sed -e "s|PROJECT_ID|${PROJECT_ID}|g" -e "s|REGION|${REGION}|g" -e "s|IMAGE|${IMAGE}|g" "$1"; }

gcloud builds submit --project "$PROJECT_ID" --tag "$IMAGE" .
render deploy/cloudrun-job.yaml > /tmp/strategy-engine-job.yaml
gcloud run jobs replace /tmp/strategy-engine-job.yaml --project "$PROJECT_ID" --region "$REGION"

render deploy/scheduler-daily.yaml > /tmp/strategy-engine-scheduler.yaml
name=$(sed -n 's/^name: //p' /tmp/strategy-engine-scheduler.yaml)
schedule=$(sed -n 's/^schedule: "\(.*\)"/\1/p' /tmp/strategy-engine-scheduler.yaml)
uri=$(sed -n 's/^  uri: //p' /tmp/strategy-engine-scheduler.yaml)
sa=$(sed -n 's/^    serviceAccountEmail: //p' /tmp/strategy-engine-scheduler.yaml)
verb=create; gcloud scheduler jobs describe "$name" --project "$PROJECT_ID" --location "$REGION" >/dev/null 2>&1 && verb=update
gcloud scheduler jobs "$verb" http "$name" --project "$PROJECT_ID" --location "$REGION" \
  --schedule "$schedule" --time-zone Asia/Kolkata --http-method POST --uri "$uri" --oauth-service-account-email "$sa"
echo "deployed $IMAGE"
