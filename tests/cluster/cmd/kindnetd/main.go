// Command kindnetd is kubemr's offline stand-in for kind's kindnetd: the pod network of
// a kind cluster whose images are all built on this machine (docs/kind.md).
//
// kind's node image expects the image docker.io/kindest/kindnetd and runs it as the
// DaemonSet of kind's default CNI manifest (host network, NET_ADMIN, the environment
// HOST_IP and POD_SUBNET). kind's own kindnetd is not a module the Go proxy serves, so
// this small program does the part kubemr's tests need, the way kindnetd does it:
//
//   - it writes /etc/cni/net.d/10-kindnet.conflist for its own node: the ptp plugin
//     with host-local addresses from the node's spec.podCIDR, and portmap;
//   - it routes every other node's pod CIDR via that node's InternalIP.
//
// It does not masquerade traffic leaving the cluster (there is no outside network here)
// and does not enforce NetworkPolicy.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const (
	confDir   = "/etc/cni/net.d"
	confFile  = "10-kindnet.conflist"
	resync    = 30 * time.Second
	cniMTU    = 1500
	ipamState = "/run/cni-ipam-state"
)

// conflist is the CNI configuration of a node whose pods get addresses from podCIDR.
func conflist(podCIDR string) ([]byte, error) {
	document := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"mtu":    cniMTU,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": ipamState,
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"ranges":  []any{[]any{map[string]any{"subnet": podCIDR}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	return json.MarshalIndent(document, "", "  ")
}

// internalIP is the node's InternalIP address, or nil.
func internalIP(node *corev1.Node) net.IP {
	for _, address := range node.Status.Addresses {
		if address.Type == corev1.NodeInternalIP {
			return net.ParseIP(address.Address)
		}
	}
	return nil
}

// writeConf replaces the CNI configuration atomically when its content changes.
func writeConf(content []byte) error {
	path := filepath.Join(confDir, confFile)
	if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, content) {
		return nil
	}
	temporary := path + ".tmp"
	if err := os.WriteFile(temporary, content, 0o644); err != nil {
		return err
	}
	log.Printf("writing %s", path)
	return os.Rename(temporary, path)
}

// reconcile brings this host's CNI configuration and routes in line with one node.
func reconcile(node *corev1.Node, hostIP net.IP) error {
	address := internalIP(node)
	if address == nil || node.Spec.PodCIDR == "" {
		return nil
	}
	if address.Equal(hostIP) {
		content, err := conflist(node.Spec.PodCIDR)
		if err != nil {
			return err
		}
		return writeConf(content)
	}
	_, destination, err := net.ParseCIDR(node.Spec.PodCIDR)
	if err != nil {
		return fmt.Errorf("node %s: spec.podCIDR %q: %w", node.Name, node.Spec.PodCIDR, err)
	}
	route := netlink.Route{Dst: destination, Gw: address}
	if err := netlink.RouteReplace(&route); err != nil {
		return fmt.Errorf("route %s via %s (node %s): %w", destination, address, node.Name, err)
	}
	return nil
}

func main() {
	hostIP := net.ParseIP(os.Getenv("HOST_IP"))
	if hostIP == nil {
		log.Fatalf("HOST_IP=%q is not an IP address", os.Getenv("HOST_IP"))
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster configuration: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactory(client, resync)
	handle := func(object any) {
		if node, ok := object.(*corev1.Node); ok {
			if err := reconcile(node, hostIP); err != nil {
				log.Printf("%v", err)
			}
		}
	}
	_, err = factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, object any) { handle(object) },
	})
	if err != nil {
		log.Fatalf("node informer: %v", err)
	}
	log.Printf("kindnetd (kubemr stand-in) on %s", hostIP)
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}
