# Creates Skiff's stream SKIFF and the buckets skiff-leases, skiff-leader and skiff-images, each
# with three replicas, once the NATS cluster is up. Only admin credentials may do that. The
# command is idempotent: run the job again after any change and it leaves what exists alone.
#
#   nomad/jobs/skiff-bootstrap
#     server  tls://10.0.0.1:4222,tls://10.0.0.2:4222,tls://10.0.0.3:4222
#     creds   creds/admin.creds
#     ca      ca.pem
#
# A job reads its own nomad/jobs/<job> Variable without any ACL policy.
job "skiff-bootstrap" {
  datacenters = ["*"]
  type        = "batch"

  group "bootstrap" {
    count = 1

    # The NATS cluster may still be electing its meta leader when this starts: retry in place
    # a few times, then on another node.
    restart {
      attempts = 5
      interval = "10m"
      delay    = "20s"
      mode     = "fail"
    }

    reschedule {
      attempts       = 3
      interval       = "1h"
      delay          = "1m"
      delay_function = "constant"
      unlimited      = false
    }

    task "bootstrap" {
      driver = "exec"

      config {
        command = "/usr/local/bin/skiff"
        args    = ["cluster", "bootstrap", "--replicas", "3", "--leader-ttl", "10s", "--config", "local/admin.yaml"]
      }

      # Relative paths in a client config are relative to the config file (local/).
      template {
        destination = "local/admin.yaml"
        perms       = "0644"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-bootstrap" }}server: "{{ .server }}"
creds: ../secrets/admin.creds
ca: ../secrets/ca.pem
{{ end -}}
EOT
      }

      template {
        destination = "secrets/admin.creds"
        perms       = "0600"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-bootstrap" }}{{ .creds }}{{ end -}}
EOT
      }

      template {
        destination = "secrets/ca.pem"
        perms       = "0644"
        data        = <<EOT
{{ with nomadVar "nomad/jobs/skiff-bootstrap" }}{{ .ca }}{{ end -}}
EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
