# Skiff's control plane. Two replicas on two VMs: both answer commands and queries (one queue
# group), one holds the leader key and schedules; the other takes over within the leader TTL (skiff cluster bootstrap --leader-ttl).
#
#   nomad/jobs/skiff-scheduler
#     server  tls://10.0.0.1:4222,tls://10.0.0.2:4222,tls://10.0.0.3:4222
#     creds   creds/scheduler.creds
#     ca      ca.pem
#
# No service check: the scheduler listens on no port (it only talks to NATS), and Nomad's own
# service provider runs only http and tcp checks (script checks need Consul). Its liveness is
# the process: it exits when it cannot do its work, and the restart block brings it back.
job "skiff-scheduler" {
  datacenters = ["*"]
  type        = "service"

  update {
    max_parallel      = 1
    health_check      = "task_states"
    min_healthy_time  = "15s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "scheduler" {
    count = 2

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    spread {
      attribute = "${node.unique.id}"
    }

    restart {
      attempts = 10
      interval = "10m"
      delay    = "10s"
      mode     = "delay"
    }

    # Prometheus metrics and /debug/pprof/ (--metrics-addr), registered in Nomad's service
    # catalogue for Prometheus's nomad_sd_configs. Static, like NATS's ports: one replica a VM.
    network {
      port "metrics" {
        static = 9180
      }
    }

    service {
      provider = "nomad"
      name     = "skiff-scheduler-metrics"
      port     = "metrics"
      tags     = ["prometheus"]
    }

    task "scheduler" {
      driver = "exec"

      # --id names this replica in the leader key; the allocation ID stays the same across
      # restarts in place, so a restarted leader recognises its own key.
      # --pod-cidr must equal every node agent's --cluster-cidr (its default, 10.88.0.0/16).
      # The leader writes a snapshot of the fold every --snapshot-events events or
      # --snapshot-interval, whichever comes first, and keeps --snapshot-keep of them; every
      # scheduler, agent and proxy starts from the newest.
      config {
        command = "/usr/local/bin/skiff-scheduler"
        args = [
          "--config", "local/scheduler.yaml",
          "--id", "${NOMAD_ALLOC_ID}",
          "--lease-timeout", "40s",
          "--service-cidr", "10.96.0.0/16",
          "--pod-cidr", "10.88.0.0/16",
          "--snapshot-events", "100000",
          "--snapshot-interval", "10m",
          "--snapshot-keep", "3",
          "--log-level", "info",
          "--metrics-addr", "${NOMAD_ADDR_metrics}",
        ]
      }

      template {
        destination = "local/scheduler.yaml"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-scheduler" }}server: "{{ .server }}"
creds: ../secrets/scheduler.creds
ca: ../secrets/ca.pem
{{ end -}}
EOT
      }

      template {
        destination = "secrets/scheduler.creds"
        perms       = "0600"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-scheduler" }}{{ .creds }}{{ end -}}
EOT
      }

      template {
        destination = "secrets/ca.pem"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-scheduler" }}{{ .ca }}{{ end -}}
EOT
      }

      kill_timeout = "15s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
