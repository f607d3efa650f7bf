# One Skiff node on every Nomad client: the node agent (the kubelet's job: pods on containerd
# with CNI networking) and the net proxy (Service virtual IPs in nftables).
#
# Each node has its own identity (node:<name>), minted by `skiff node creds <name>`, in a
# Variable keyed by the Nomad node name, which becomes the Skiff node name:
#
#   nomad/jobs/skiff-node/<node name>
#     server  tls://10.0.0.1:4222,tls://10.0.0.2:4222,tls://10.0.0.3:4222
#     creds   creds/node-<name>.creds
#     ca      ca.pem
#
# The job reads it through the ACL policy in skiff-node.policy.hcl. A client without its
# Variable waits in "pending" (the template blocks) until `nomad var put` creates it.
#
# Both tasks use raw_exec, which runs them as root on the host, without isolation. They need it:
# the agent talks to containerd over /run/containerd/containerd.sock, creates network
# namespaces, runs the CNI plugins (a bridge, veth pairs, host-gw routes to the other nodes)
# and writes /var/lib/skiff; the proxy programs nftables in the host's network namespace.
# exec's chroot and its reduced capabilities would break each of those.
job "skiff-node" {
  datacenters = ["*"]
  type        = "system"

  # One node at a time: pods keep running under containerd's shims while their agent restarts,
  # but a slow restart on every node at once would mark them all NotReady.
  # (Older Nomad versions enforce only max_parallel and stagger for system jobs.)
  update {
    max_parallel     = 1
    stagger          = "30s"
    health_check     = "task_states"
    min_healthy_time = "15s"
    healthy_deadline = "3m"
  }

  group "node" {
    restart {
      attempts = 10
      interval = "10m"
      delay    = "10s"
      mode     = "delay"
    }

    # Each part's Prometheus metrics (--metrics-addr), registered in Nomad's service catalogue
    # for Prometheus's nomad_sd_configs. Static: one allocation a node (a system job).
    network {
      port "agent_metrics" {
        static = 9181
      }
      port "proxy_metrics" {
        static = 9182
      }
    }

    service {
      provider = "nomad"
      name     = "skiff-nodeagent-metrics"
      port     = "agent_metrics"
      tags     = ["prometheus"]
      task     = "nodeagent"
    }

    service {
      provider = "nomad"
      name     = "skiff-netproxy-metrics"
      port     = "proxy_metrics"
      tags     = ["prometheus"]
      task     = "netproxy"
    }

    task "nodeagent" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/skiff-nodeagent"
        args = [
          "--config", "local/node.yaml",
          "--node-name", "${node.unique.name}",
          "--address", "${attr.unique.network.ip-address}",
          "--containerd-address", "/run/containerd/containerd.sock",
          "--state-dir", "/var/lib/skiff",
          "--log-dir", "/var/log/skiff/pods",
          "--metrics-addr", "${NOMAD_ADDR_agent_metrics}",
        ]
      }

      template {
        destination = "local/node.yaml"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}server: "{{ .server }}"
creds: ../secrets/node.creds
ca: ../secrets/ca.pem
{{ end -}}
EOT
      }

      template {
        destination = "secrets/node.creds"
        perms       = "0600"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}{{ .creds }}{{ end -}}
EOT
      }

      template {
        destination = "secrets/ca.pem"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}{{ .ca }}{{ end -}}
EOT
      }

      # The agent stops no pod when it stops; a graceful exit only closes its NATS connection.
      kill_timeout = "20s"

      resources {
        cpu    = 500
        memory = 512
      }
    }

    task "netproxy" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/skiff-netproxy"
        args    = ["--config", "local/node.yaml", "--metrics-addr", "${NOMAD_ADDR_proxy_metrics}"]
      }

      template {
        destination = "local/node.yaml"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}server: "{{ .server }}"
creds: ../secrets/node.creds
ca: ../secrets/ca.pem
{{ end -}}
EOT
      }

      template {
        destination = "secrets/node.creds"
        perms       = "0600"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}{{ .creds }}{{ end -}}
EOT
      }

      template {
        destination = "secrets/ca.pem"
        perms       = "0644"
        change_mode = "restart"
        data        = <<EOT
{{ with nomadVar (printf "nomad/jobs/skiff-node/%s" (env "node.unique.name")) }}{{ .ca }}{{ end -}}
EOT
      }

      # The rules stay in the kernel when the proxy exits, so Services keep working while it
      # restarts.
      kill_timeout = "10s"

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
