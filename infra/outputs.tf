output "api_url" {
  value = google_cloud_run_v2_service.api.uri
}
output "archive_bucket" {
  value = google_storage_bucket.archive.name
}
output "job_service_account" {
  value = google_service_account.job.email
}
output "registry" {
  value = "${local.region}-docker.pkg.dev/${local.project}/${google_artifact_registry_repository.images.repository_id}"
}
