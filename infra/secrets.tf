# Secret Manager: the containers' secrets. Terraform creates the secrets, never their values (values in state
# would be secrets in a file): add each value once with `gcloud secrets versions add NAME --data-file=-`.
resource "google_secret_manager_secret" "secrets" {
  # Google-managed encryption: tokens are rotated by adding versions; a CMEK would add nothing here.
  for_each  = local.secrets
  secret_id = each.key
  labels    = { consumer = each.value.job ? "job" : "api" }
  replication {
    user_managed {
      replicas {
        location = local.region
      }
    }
  }
  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "job" {
  for_each  = local.job_secrets
  secret_id = google_secret_manager_secret.secrets[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.job.email}"
}

resource "google_secret_manager_secret_iam_member" "api" {
  for_each  = local.api_secrets
  secret_id = google_secret_manager_secret.secrets[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.api.email}"
}
