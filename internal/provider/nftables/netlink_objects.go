package nftables

import (
	"fmt"

	nft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// tableExists reports whether the inet drawbridge table exists.
func tableExists(c *nft.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nft.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list inet tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// objects are the Go descriptions of the table, chain, sets and rules.
type objects struct {
	table *nft.Table
	chain *nft.Chain
	guard map[uint8]*nft.Set
	allow map[setID]*nft.Set
}

func newObjects() *objects {
	t := &nft.Table{Name: TableName, Family: nft.TableFamilyINet}
	policy := nft.ChainPolicyAccept
	o := &objects{
		table: t,
		chain: &nft.Chain{
			Name:     ChainName,
			Table:    t,
			Type:     nft.ChainTypeFilter,
			Hooknum:  nft.ChainHookInput,
			Priority: nft.ChainPriorityRef(ChainPriority),
			Policy:   &policy,
		},
		guard: map[uint8]*nft.Set{},
		allow: map[setID]*nft.Set{},
	}
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		o.guard[pr] = &nft.Set{Table: t, Name: "guard_" + protoName(pr), KeyType: nft.TypeInetService}
	}
	for _, id := range allowSets {
		addr := nft.TypeIPAddr
		if id.v6 {
			addr = nft.TypeIP6Addr
		}
		o.allow[id] = &nft.Set{
			Table:         t,
			Name:          id.name(),
			KeyType:       nft.MustConcatSetType(addr, nft.TypeInetService),
			Interval:      !id.single,
			Concatenation: true,
			HasTimeout:    true,
		}
	}
	return o
}

func (o *objects) sets() []*nft.Set {
	var out []*nft.Set
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		out = append(out, o.guard[pr])
	}
	for _, id := range allowSets {
		out = append(out, o.allow[id])
	}
	return out
}

// ruleTags names the rules in order; each rule carries its tag as a comment
// so a later Apply can tell whether the chain is what this version writes.
func (o *objects) ruleTags() []string {
	var tags []string
	for _, r := range o.rules() {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		tags = append(tags, s)
	}
	return tags
}

func (o *objects) rules() []*nft.Rule {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rule := func(tag string, es ...expr.Any) *nft.Rule {
		return &nft.Rule{
			Table:    o.table,
			Chain:    o.chain,
			Exprs:    es,
			UserData: userdata.AppendString(nil, userdata.TypeComment, "drawbridge:v1:"+tag),
		}
	}
	rs := []*nft.Rule{
		// iif "lo" accept (the loopback is ifindex 1 in every namespace)
		rule("lo",
			&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
			accept),
		// ct state established,related accept
		rule("ct",
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			accept),
	}
	for _, id := range allowSets {
		nfproto, off, alen, portReg := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4), uint32(9)
		if id.v6 {
			nfproto, off, alen, portReg = unix.NFPROTO_IPV6, 8, 16, 12
		}
		s := o.allow[id]
		// meta nfproto X meta l4proto P ip(6) saddr . th dport @allowX_P accept
		// Concatenations use the 32-bit registers from NFT_REG32_00 (8).
		rs = append(rs, rule(s.Name,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{id.proto}},
			&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: alen},
			&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, SetName: s.Name, SetID: s.ID},
			accept))
	}
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		s := o.guard[pr]
		// meta l4proto P th dport @guard_P drop
		rs = append(rs, rule(s.Name,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{pr}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			drop))
	}
	return rs
}

func ruleTags(c *nft.Conn, o *objects) ([]string, error) {
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: list inet chains: %w", err)
	}
	found := false
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == ChainName {
			found = true
		}
	}
	if !found {
		return nil, nil
	}
	rules, err := c.GetRules(o.table, o.chain)
	if err != nil {
		return nil, fmt.Errorf("nftables: list rules of inet %s %s: %w", TableName, ChainName, err)
	}
	var tags []string
	for _, r := range rules {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		tags = append(tags, s)
	}
	return tags, nil
}
