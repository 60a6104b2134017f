// Added to kube-network-policies' package by scripts/kind/netpol.sh when the image is built.
//
// The controller hands a connection's first packet to user space with nftables' own queue
// statement, which needs the kernel's nft_queue (CONFIG_NFT_QUEUE). Kernels built without it
// still run the xtables NFQUEUE target inside nftables through nft_compat (CONFIG_NFT_COMPAT and
// CONFIG_NETFILTER_XT_TARGET_NFQUEUE), which queues to the same netlink queue with the same
// bypass flag. The controller's verdicts, sets and chains are unchanged.

package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// xtQueue is the NFQUEUE target, revision 3: struct xt_NFQ_info_v3 {queuenum, queues_total,
// flags}, three native-endian u16, padded to the 8 bytes XT_ALIGN gives its size.
func xtQueue(num uint16, bypass bool) expr.Any {
	info := make([]byte, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	raw := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &raw}
}
