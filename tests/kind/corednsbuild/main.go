// CoreDNS for kubemr's offline kind node image (tests/kind, docs/kind.md), with only the
// plugins of the Corefile kubeadm writes for a cluster (and kind uses unchanged):
// errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload and
// loadbalance. Upstream's main imports all ~60 plugins, and their cloud SDKs (route53,
// azure, clouddns), etcd and nomad clients more than double a cold build. The chain
// order is upstream's (core/dnsserver/zdirectives.go), restricted to these plugins.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// kubeadmPlugins are the directives the server accepts, in upstream's chain order.
var kubeadmPlugins = map[string]bool{
	"reload": true, "ready": true, "health": true, "prometheus": true, "errors": true,
	"loadbalance": true, "cache": true, "kubernetes": true, "loop": true, "forward": true,
}

func init() {
	kept := make([]string, 0, len(kubeadmPlugins))
	for _, name := range dnsserver.Directives {
		if kubeadmPlugins[name] {
			kept = append(kept, name)
		}
	}
	dnsserver.Directives = kept
}

func main() {
	coremain.Run()
}
