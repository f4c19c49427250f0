# The image registry. Tags are immutable: a tag once pushed always names the same digest, and deployments pin
# the digest anyway (var.image).
resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption; the images are rebuildable from git and hold no secrets.
  location      = local.region
  repository_id = local.name
  format        = "DOCKER"
  description   = "Strategy Engine images (one per commit of main)"
  docker_config {
    immutable_tags = true
  }
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 50
    }
  }
  depends_on = [google_project_service.apis]
}

# Image promotion: production's deployer reads staging's registry (environments/staging.yaml registry_readers) to
# copy the image that passed staging, digest unchanged.
resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each   = toset(local.env.registry_readers)
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
