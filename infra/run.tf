# The daily job (every stage of the trading day runs it with its own command) and the API service.
# Both run var.image, pinned by digest. The image carries its git commit (GIT_COMMIT, STRATEGY_ENGINE_GIT_COMMIT);
# STRATEGY_ENGINE_IMAGE_DIGEST (required on Cloud Run by strategy_engine.runs.launcher.image_identity) and
# STRATEGY_ENGINE_IMAGE name exactly what ran, for the run manifests.
resource "google_cloud_run_v2_job" "daily" {
  name                = local.job_name
  location            = local.region
  deletion_protection = false
  template {
    task_count  = local.env.job.tasks
    parallelism = local.env.job.parallelism
    template {
      service_account = google_service_account.job.email
      max_retries     = local.env.job.max_retries
      timeout         = "${local.env.job.timeout_seconds}s"
      containers {
        image   = var.image
        command = ["strategy-engine"]
        args    = local.job_args
        resources {
          limits = {
            cpu    = local.env.job.cpu
            memory = local.env.job.memory
          }
        }
        env {
          name  = "ENVIRONMENT"
          value = local.env.environment
        }
        env {
          name  = "STRATEGY_ENGINE_IMAGE"
          value = var.image
        }
        env {
          name  = "STRATEGY_ENGINE_IMAGE_DIGEST"
          value = local.image_digest
        }
        dynamic "env" {
          for_each = merge(local.job_env, {
            SMTP_HOST      = local.env.alerts.smtp_host
            SMTP_PORT      = tostring(local.env.alerts.smtp_port)
            SMTP_USER      = local.env.alerts.smtp_user
            SMTP_FROM      = local.env.alerts.smtp_from
            ALERT_EMAIL_TO = local.env.alerts.email_to
          })
          content {
            name  = env.key
            value = env.value
          }
        }
        dynamic "env" {
          for_each = local.job_secrets
          content {
            name = env.value.env
            value_source {
              secret_key_ref {
                secret  = google_secret_manager_secret.secrets[env.key].secret_id
                version = "latest"
              }
            }
          }
        }
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.job, google_storage_bucket_iam_member.job_archive, google_service_account_iam_member.deployer_act_as]
}

resource "google_cloud_run_v2_service" "api" {
  name                = local.api_name
  location            = local.region
  ingress             = local.env.service.ingress
  deletion_protection = false
  template {
    service_account                  = google_service_account.api.email
    max_instance_request_concurrency = local.env.service.concurrency
    timeout                          = "900s"
    scaling {
      min_instance_count = local.env.service.min_instances
      max_instance_count = local.env.service.max_instances
    }
    containers {
      image   = var.image
      command = ["strategy-engine"]
      args    = ["serve", "--host", "0.0.0.0", "--port", "8080"]
      ports {
        container_port = 8080
      }
      resources {
        limits = {
          cpu    = local.env.service.cpu
          memory = local.env.service.memory
        }
      }
      dynamic "env" {
        for_each = {
          ENVIRONMENT                  = local.env.environment
          GOOGLE_CLOUD_PROJECT         = local.project
          BIGQUERY_DATASET             = local.dataset_id
          STRATEGY_ENGINE_WAREHOUSE    = local.warehouse
          STRATEGY_ENGINE_MARKET_DATA  = local.warehouse
          STRATEGY_ENGINE_ARCHIVE      = local.archive_uri
          STRATEGY_ENGINE_IMAGE        = var.image
          STRATEGY_ENGINE_IMAGE_DIGEST = local.image_digest
        }
        content {
          name  = env.key
          value = env.value
        }
      }
      dynamic "env" {
        for_each = local.api_secrets
        content {
          name = env.value.env
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.secrets[env.key].secret_id
              version = "latest"
            }
          }
        }
      }
      startup_probe {
        http_get {
          path = "/health"
        }
        period_seconds    = 5
        failure_threshold = 24
      }
      liveness_probe {
        http_get {
          path = "/health"
        }
        period_seconds = 30
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.api, google_storage_bucket_iam_member.api_archive, google_service_account_iam_member.deployer_act_as]
}
