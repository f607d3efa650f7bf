# The NATS JetStream cluster that holds Skiff's event log: three stock nats-server processes,
# one per VM marked with the client meta `skiff_nats = "true"`.
#
# Every server's files come from its own Nomad Variable, keyed by the Nomad node name, which
# must equal the NAME given to `skiff cluster init --server NAME=HOST`:
#
#   nomad/jobs/skiff-nats/<node name>
#     conf  servers/NAME/nats.conf (with resolver_preload: the SYS and SKIFF account JWTs)
#     cert  servers/NAME/server.pem
#     key   servers/NAME/server-key.pem
#     ca    servers/NAME/ca.pem
#
# The job reads that path through the ACL policy in skiff-nats.policy.hcl (see README.md).
job "skiff-nats" {
  datacenters = ["*"]
  type        = "service"

  # Rolling changes go one server at a time and wait for it to be healthy (JetStream caught up,
  # /healthz answers ok) before the next one stops: two of three servers keep the quorum.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "30s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
    stagger           = "30s"
  }

  group "nats" {
    count = 3

    # The three servers are pinned: each server's certificate, listen address and routes name
    # one VM, and its JetStream store lives on that VM's disk.
    constraint {
      attribute = "${meta.skiff_nats}"
      value     = "true"
    }

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # Never move a server to another VM on failure: its store is here. Restart it in place.
    reschedule {
      attempts  = 0
      unlimited = false
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    # Static ports: skiff cluster init wrote them into nats.conf and into every route.
    network {
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "monitor" {
        static = 8222
      }
    }

    # Declared on each NATS VM in the Nomad client config (README.md, step 2).
    volume "jetstream" {
      type      = "host"
      source    = "skiff-nats"
      read_only = false
    }

    service {
      provider = "nomad"
      name     = "skiff-nats"
      port     = "client"
      tags     = ["skiff"]

      # /healthz is ok only once this server's JetStream is current with the meta leader, which
      # is what the rolling update must wait for. The monitoring port speaks HTTPS with the
      # server certificate; README.md step 1 adds the cluster CA to each VM's trust store so the
      # check verifies it.
      check {
        name            = "nats-healthz"
        type            = "http"
        protocol        = "https"
        port            = "monitor"
        path            = "/healthz"
        interval        = "10s"
        timeout         = "3s"
        tls_skip_verify = false
      }
    }

    task "nats-server" {
      # exec, not raw_exec: NATS needs no privilege, and exec can mount the host volume.
      driver = "exec"

      config {
        command = "/usr/local/bin/nats-server"
        args    = ["-c", "${NOMAD_SECRETS_DIR}/nats.conf"]
      }

      # store_dir and the resolver dir in nats.conf are /var/lib/nats (JetStream adds jetstream/) and
      # /var/lib/nats/jwt (skiff cluster init's defaults).
      volume_mount {
        volume      = "jetstream"
        destination = "/var/lib/nats"
        read_only   = false
      }

      # A changed config or certificate is reloaded in place (SIGHUP), without a restart.
      template {
        destination   = "secrets/nats.conf"
        perms         = "0600"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-nats/%s" (env "node.unique.name")) }}{{ .conf }}{{ end -}}
EOT
      }

      template {
        destination   = "secrets/server.pem"
        perms         = "0600"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-nats/%s" (env "node.unique.name")) }}{{ .cert }}{{ end -}}
EOT
      }

      template {
        destination   = "secrets/server-key.pem"
        perms         = "0600"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-nats/%s" (env "node.unique.name")) }}{{ .key }}{{ end -}}
EOT
      }

      template {
        destination   = "secrets/ca.pem"
        perms         = "0644"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-nats/%s" (env "node.unique.name")) }}{{ .ca }}{{ end -}}
EOT
      }

      # nats-server shuts down cleanly on SIGTERM; the store is synced on every write
      # (sync_interval: always), so a kill after the timeout loses nothing acknowledged.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
