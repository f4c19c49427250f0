# Cloud Scheduler: one entry per stage of the trading day, read from deploy/scheduler-stages.yaml (which the
# tests check against strategy_engine.schedule.STAGES). Each entry calls the Cloud Run Admin API's jobs:run for
# the daily job with the stage's command as container overrides, as the scheduler service account.
resource "google_cloud_scheduler_job" "stages" {
  for_each    = local.stages
  name        = each.key
  description = "Strategy Engine stage ${each.value.stage}"
  schedule    = each.value.schedule
  time_zone   = each.value.timeZone
  paused      = local.env.schedule.paused
  region      = local.region

  retry_config {
    retry_count          = each.value.retryConfig.retryCount
    min_backoff_duration = each.value.retryConfig.minBackoffDuration
  }

  http_target {
    http_method = each.value.httpTarget.httpMethod
    uri         = each.value.httpTarget.uri
    headers     = each.value.httpTarget.headers
    body        = base64encode(jsonencode(each.value.httpTarget.body))
    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = each.value.httpTarget.oauthToken.scope
    }
  }
  depends_on = [google_cloud_run_v2_job_iam_member.scheduler, google_service_account_iam_member.deployer_act_as]
}
