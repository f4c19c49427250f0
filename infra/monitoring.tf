# Monitoring as code: email channels, log-based metrics, the seed's alert rules and one dashboard.
# Thresholds come from environments/<env>.yaml monitoring (the Sharpe/drawdown ones equal config/alerts.yaml;
# a test checks that).
locals {
  job_logs = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${local.job_name}\""
  # The job logs JSON lines on Cloud Run (strategy_engine.logs; CLOUD_RUN_JOB is set there): the CLI's status line of
  # a run carries jsonPayload.status and jsonPayload.stage; each alert raised (a run's status alert, or a report's
  # Sharpe/drawdown rule, sent from its kernel) is a line with jsonPayload.event="alert".
  status_line = "jsonPayload.logger=\"strategy_engine.job\" AND jsonPayload.stage:* AND jsonPayload.status=~\"^(succeeded|no_session|failed|timeout|kernel_died|killed|data_stale)$\""
  alert_line  = "jsonPayload.logger=\"strategy_engine.job\" AND jsonPayload.event=\"alert\""
  channels    = [for c in google_monitoring_notification_channel.email : c.id]
}

resource "google_monitoring_notification_channel" "email" {
  for_each     = toset(local.env.monitoring.alert_emails)
  display_name = "Strategy Engine ${local.env.environment}: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }
  depends_on = [google_project_service.apis]
}

# Every run's closing status, labelled by status and stage (the run id's kind: daily-, validate-, report-).
resource "google_logging_metric" "run_status" {
  name   = "strategy_engine/run_status"
  filter = "${local.job_logs} AND ${local.status_line}"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "status"
      value_type = "STRING"
    }
    labels {
      key        = "stage"
      value_type = "STRING"
    }
  }
  depends_on = [google_project_service.apis]
  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
    stage  = "EXTRACT(jsonPayload.stage)"
  }
}

# Alerts the job sent (config/alerts.yaml rules), labelled by rule: Sharpe, drawdown or a run status.
resource "google_logging_metric" "alerts_sent" {
  name   = "strategy_engine/alerts_sent"
  filter = "${local.job_logs} AND ${local.alert_line}"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "rule"
      value_type = "STRING"
    }
  }
  depends_on = [google_project_service.apis]
  label_extractors = {
    rule = "REGEXP_EXTRACT(jsonPayload.message, \"(Sharpe|drawdown|failed|timeout|data_stale|killed)\")"
  }
}

# The report's figures per strategy, for the dashboard: the 18:00 report's one JSON log line per strategy
# (jsonPayload.event="performance", with strategy, period, total_return, sharpe_ratio, max_drawdown; cli._say_performance).
resource "google_logging_metric" "report" {
  for_each = toset(["total_return", "max_drawdown", "sharpe_ratio"])
  name     = "strategy_engine/report_${each.value}"
  filter   = "${local.job_logs} AND jsonPayload.event=\"performance\" AND jsonPayload.${each.value}:*"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    labels {
      key        = "strategy"
      value_type = "STRING"
    }
  }
  depends_on      = [google_project_service.apis]
  value_extractor = "EXTRACT(jsonPayload.${each.value})"
  label_extractors = {
    strategy = "EXTRACT(jsonPayload.strategy)"
  }
  bucket_options {
    linear_buckets {
      num_finite_buckets = 40
      width              = 0.05
      offset             = -1
    }
  }
}

resource "google_monitoring_alert_policy" "api_error_rate" {
  display_name          = "Strategy Engine API: 5xx error rate above ${local.env.monitoring.error_rate * 100} %"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "5xx / all requests > ${local.env.monitoring.error_rate}"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.api_name}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      denominator_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.api_name}\" AND metric.type=\"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = local.env.monitoring.error_rate
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "api_latency" {
  display_name          = "Strategy Engine API: p95 response time above ${local.env.monitoring.latency_seconds} s"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "p95 request latency > ${local.env.monitoring.latency_seconds} s"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.api_name}\" AND metric.type=\"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.env.monitoring.latency_seconds * 1000 # the metric is in ms
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_95"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }
}

resource "google_monitoring_alert_policy" "job_failed" {
  display_name          = "Strategy Engine: a job execution failed"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "failed executions of ${local.job_name}"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${local.job_name}\" AND metric.type=\"run.googleapis.com/job/completed_execution_count\" AND metric.labels.result=\"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

# Missing daily run: no daily run ended succeeded or no_session (a weekday holiday) within the deadline. Checked
# Tuesday to Friday UTC only (PromQL day_of_week), so the weekend gap does not page; a missing Monday run is caught
# on Tuesday. A failed run pages at once through job_failed.
resource "google_monitoring_alert_policy" "daily_run_missing" {
  display_name          = "Strategy Engine: no daily run in ${local.env.monitoring.daily_run_deadline_hours} h"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "no succeeded/no_session daily run"
    condition_prometheus_query_language {
      query    = "absent_over_time(logging_googleapis_com:user_strategy_engine_run_status{monitored_resource=\"cloud_run_job\",stage=\"daily\",status=~\"succeeded|no_session\"}[${local.env.monitoring.daily_run_deadline_hours}h]) and on() (day_of_week() >= 2 and day_of_week() <= 5)"
      duration = "0s"
    }
  }
}

resource "google_monitoring_alert_policy" "stale_data" {
  display_name          = "Strategy Engine: a run ended data_stale (stale or missing bars)"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = "data_stale runs"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_job\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.run_status.name}\" AND metric.labels.status=\"data_stale\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
  # Stale also when the validation stage has not produced a fresh result: no validate run at all for this long.
  conditions {
    display_name = "no validation run in ${local.env.monitoring.stale_data_hours} h (Tue-Fri)"
    condition_prometheus_query_language {
      query    = "absent_over_time(logging_googleapis_com:user_strategy_engine_run_status{monitored_resource=\"cloud_run_job\",stage=\"validate\"}[${local.env.monitoring.stale_data_hours}h]) and on() (day_of_week() >= 2 and day_of_week() <= 5)"
      duration = "0s"
    }
  }
}

resource "google_monitoring_alert_policy" "performance" {
  for_each = {
    sharpe   = "Sharpe ratio below ${local.env.monitoring.sharpe_min}"
    drawdown = "drawdown beyond ${local.env.monitoring.drawdown_max * 100} %"
  }
  display_name          = "Strategy Engine: a strategy's ${each.value} (18:00 report)"
  combiner              = "OR"
  notification_channels = local.channels
  conditions {
    display_name = each.value
    condition_threshold {
      filter          = "resource.type=\"cloud_run_job\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.alerts_sent.name}\" AND metric.labels.rule=\"${each.key == "sharpe" ? "Sharpe" : "drawdown"}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}

resource "google_monitoring_dashboard" "main" {
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    environment = local.env.environment
    job_name    = local.job_name
    api_name    = local.api_name
    sharpe_min  = local.env.monitoring.sharpe_min
    drawdown    = local.env.monitoring.drawdown_max
  })
  depends_on = [google_logging_metric.report, google_logging_metric.run_status, google_logging_metric.alerts_sent]
}
