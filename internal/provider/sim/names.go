package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// RulePrefix starts the name of every NSG rule and security group JIT owns.
// Anything not named so is the user's, and JIT never changes it.
const RulePrefix = "drawbridge-jit-"

// MaxRuleNameLen is Azure's limit on a security rule name.
const MaxRuleNameLen = 80

// GrantGroupPrefix starts the GroupId of every security group JIT creates
// for a grant.
const GrantGroupPrefix = "sg-jit-"

// KindRevoked is the object kind, keyed by security group ID, that records
// the ingress permissions JIT revoked from that group and which VMs need
// them revoked.
const KindRevoked = "sim.awsRevoked"

// remainderMark is the description put on every IP range of a permission
// JIT added back as the remainder of one it revoked, so an operator can tell
// it apart; removal relies on the KindRevoked record, not on the mark.
const remainderMark = "drawbridge-jit: remainder of a permission revoked for JIT"

func shortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// vmHash identifies a VM in rule names: IDs are case-insensitive, so the key.
func vmHash(vmID string) string { return shortHash(inventory.Key(vmID), 8) }

// sanitize keeps the characters Azure allows in a rule name (letters,
// digits, '_', '.', '-') and replaces the rest with '-'.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// vmName is the VM's name, or the last segment of its ID.
func vmName(vm inventory.VM) string {
	if vm.Name != "" {
		return vm.Name
	}
	id := strings.TrimSuffix(vm.ID, "/")
	return id[strings.LastIndex(id, "/")+1:]
}

func protoWord(p netrule.Protocol) string {
	if p == netrule.Any || p == "" {
		return "any"
	}
	return strings.ToLower(string(p))
}

func denyPrefix(vmID string) string  { return RulePrefix + "deny-" + vmHash(vmID) + "-" }
func allowPrefix(vmID string) string { return RulePrefix + "allow-" + vmHash(vmID) + "-" }

// DenyRuleName is the name of the JIT deny rule for (VM, port, protocol):
// "drawbridge-jit-deny-<hash of VM ID>-<VM name>-<port>-<protocol>". The hash
// keeps two VMs of the same name apart in a shared subnet NSG; the name, cut
// to fit Azure's 80 characters, keeps the rule readable.
func DenyRuleName(vm inventory.VM, port int, proto netrule.Protocol) string {
	tail := "-" + strconv.Itoa(port) + "-" + protoWord(proto)
	head := denyPrefix(vm.ID)
	name := sanitize(vmName(vm))
	if room := MaxRuleNameLen - len(head) - len(tail); len(name) > room {
		name = name[:room]
	}
	return head + name + tail
}

// AllowRuleName is the name of the JIT allow rule of a grant on a VM:
// "drawbridge-jit-allow-<hash of VM ID>-<grant ID>". The VM hash tells which
// VM's rules an expiry may remove from a shared NSG. A grant ID too long for
// 80 characters is cut and suffixed with its own hash to stay unique.
func AllowRuleName(vmID, grantID string) string {
	head := allowPrefix(vmID)
	id := sanitize(grantID)
	if len(head)+len(id) > MaxRuleNameLen {
		h := shortHash(grantID, 10)
		id = id[:MaxRuleNameLen-len(head)-len(h)-1] + "-" + h
	}
	return head + id
}

// GrantGroupID is the GroupId of the security group JIT creates for a grant:
// "sg-jit-" and 17 hex digits, like EC2's own IDs.
func GrantGroupID(grantID string) string { return GrantGroupPrefix + shortHash(grantID, 17) }

// GrantGroupName is the GroupName of a grant's security group.
func GrantGroupName(grantID string) string { return RulePrefix + grantID }

// grantGroupDescription records which VM a grant group belongs to, so that
// an expiry finds it even when it is not attached (a partial state).
func grantGroupDescription(vmID, grantID string) string {
	return "drawbridge JIT access for " + inventory.Key(vmID) + " (grant " + grantID + ")"
}

// VMOwnsRule reports whether name is one of JIT's rules (deny or allow) for
// the VM vmID. Azure rule names compare case-insensitively.
func VMOwnsRule(vmID, name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, denyPrefix(vmID)) || strings.HasPrefix(n, allowPrefix(vmID))
}

// RuleVMHash returns the VM hash a JIT rule name carries ("" for a name
// that is not JIT's), to match rules found in an NSG (or DNAT rules found
// in a firewall) to inventory VMs.
func RuleVMHash(name string) string {
	n := strings.ToLower(name)
	for _, p := range []string{RulePrefix + "deny-", RulePrefix + "allow-", RulePrefix + "dnat-"} {
		if rest, ok := strings.CutPrefix(n, p); ok && len(rest) > 8 && rest[8] == '-' {
			return rest[:8]
		}
	}
	return ""
}

// VMHash is the hash of vmID that JIT's rule names carry.
func VMHash(vmID string) string { return vmHash(vmID) }
