// Package inventory owns the model of the machines drawbridge guards and the
// network objects in front of them: Azure VMs, NICs, subnets, NSGs and
// firewalls; AWS instances, ENIs and security groups; plain Linux hosts.
//
// The simulated network provider mutates NSGs and security groups of this
// model; the assessment reads it. It is pure: loading files and storing
// objects happen elsewhere.
package inventory

import (
	"net/netip"
	"strings"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Cloud is where a VM lives, which decides how its reachability is computed.
type Cloud string

const (
	Azure Cloud = "azure"
	AWS   Cloud = "aws"
	Host  Cloud = "host" // a Linux host guarded by the agent through nftables
)

// Provider names the adapter that changes a VM's firewall.
const (
	ProviderSim      = "sim"
	ProviderNftables = "nftables"
	ProviderAzure    = "azure" // planned: Azure SDK
	ProviderAWS      = "aws"   // planned: AWS SDK
)

// VM is a machine whose ports drawbridge guards. ID is a resource ID.
type VM struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Cloud    Cloud  `json:"cloud"`
	Provider string `json:"provider"`
	Location string `json:"location,omitempty"`

	// Azure: network interfaces (IDs of NICs), a classic (ASM) deployment,
	// and the Azure Firewall in front of the VM, if any.
	NICs     []string `json:"nics,omitempty"`
	Classic  bool     `json:"classic,omitempty"`
	Firewall string   `json:"firewall,omitempty"`

	// AWS: the instance ID and its ENIs (IDs of ENIs, primary first).
	InstanceID string   `json:"instanceId,omitempty"`
	ENIs       []string `json:"enis,omitempty"`

	// Host: the addresses the agent guards.
	Addresses []netip.Addr `json:"addresses,omitempty"`
}

// NIC is an Azure network interface.
type NIC struct {
	ID         string       `json:"id"`
	Subnet     string       `json:"subnet,omitempty"`
	NSG        string       `json:"networkSecurityGroup,omitempty"`
	PrivateIPs []netip.Addr `json:"privateIPAddresses,omitempty"`
	PublicIPs  []netip.Addr `json:"publicIPAddresses,omitempty"`
}

// Subnet is an Azure virtual network subnet, optionally with an NSG.
type Subnet struct {
	ID            string       `json:"id"`
	AddressPrefix netip.Prefix `json:"addressPrefix"`
	NSG           string       `json:"networkSecurityGroup,omitempty"`
}

// VirtualNetwork is an Azure virtual network. Its address space is what the
// VirtualNetwork service tag stands for in the NSG rules of its subnets'
// NICs. Subnets belong to the virtual network whose ID their own ID starts
// with (".../virtualNetworks/{vnet}/subnets/{subnet}"); without a listed
// virtual network, the prefixes of its subnets stand in for the space.
type VirtualNetwork struct {
	ID           string         `json:"id"`
	AddressSpace []netip.Prefix `json:"addressSpace"`
}

// Firewall is an Azure Firewall. JIT cannot protect VMs behind one that
// Azure Firewall Manager controls through firewall policies; behind a
// classic one (rules, not a policy) a grant adds a DNAT rule (firewall.go).
type Firewall struct {
	ID                       string `json:"id"`
	ManagedByFirewallManager bool   `json:"managedByFirewallManager,omitempty"`
	// PublicIPs are the firewall's public addresses; a JIT DNAT rule
	// listens on the first.
	PublicIPs []netip.Addr `json:"publicIPAddresses,omitempty"`
	// SubnetPrefix is the address prefix of the firewall's
	// AzureFirewallSubnet: traffic it DNATs to a private address arrives
	// from an address in it (the firewall SNATs it), so that is the source
	// the NSG allow rule of a grant through the firewall names.
	SubnetPrefix netip.Prefix `json:"subnetPrefix,omitzero"`
	// Subnet is the ID of that AzureFirewallSubnet, if known: discovery
	// links the firewall to the VMs of its virtual network through it.
	Subnet string `json:"subnet,omitempty"`
	// NatRuleCollections are the classic DNAT rule collections.
	NatRuleCollections []NatRuleCollection `json:"natRuleCollections,omitempty"`
}

// ENI is an AWS elastic network interface. At most MaxSecurityGroupsPerENI
// security groups can be attached.
type ENI struct {
	ID             string       `json:"id"`
	SubnetID       string       `json:"subnetId,omitempty"`
	PrivateIPs     []netip.Addr `json:"privateIpAddresses,omitempty"`
	PublicIP       netip.Addr   `json:"publicIp,omitzero"`
	SecurityGroups []string     `json:"securityGroups"`
}

// MaxSecurityGroupsPerENI is AWS's default quota of security groups per ENI.
const MaxSecurityGroupsPerENI = 5

// Setting switches JIT off for every VM under a scope (a subscription or
// resource group); the assessment reports such VMs as not applicable.
type Setting struct {
	Scope       string `json:"scope"`
	JITDisabled bool   `json:"jitDisabled"`
}

// Inventory is a whole document of machines and network objects, as loaded
// by `drawbridge inventory apply`.
type Inventory struct {
	VMs             []VM                    `json:"vms,omitempty"`
	NICs            []NIC                   `json:"nics,omitempty"`
	VirtualNetworks []VirtualNetwork        `json:"virtualNetworks,omitempty"`
	Subnets         []Subnet                `json:"subnets,omitempty"`
	NSGs            []netrule.NSG           `json:"networkSecurityGroups,omitempty"`
	Firewalls       []Firewall              `json:"firewalls,omitempty"`
	ENIs            []ENI                   `json:"enis,omitempty"`
	SecurityGroups  []netrule.SecurityGroup `json:"securityGroups,omitempty"`
	Settings        []Setting               `json:"settings,omitempty"`
}

// Object kinds, as stored. Each object is stored as its JSON under (kind, id).
const (
	KindVM             = "vm"
	KindNIC            = "nic"
	KindSubnet         = "subnet"
	KindVirtualNetwork = "virtualNetwork"
	KindNSG            = "nsg"
	KindFirewall       = "firewall"
	KindENI            = "eni"
	KindSecurityGroup  = "securityGroup"
	KindSetting        = "setting"
)

// Key is the storage key of an object ID. Azure IDs compare
// case-insensitively, and AWS IDs are lower-case already, so keys are the
// lower-cased ID.
// (No cache: a dozen calls per request cost about 0.5% of one.)
func Key(id string) string { return strings.ToLower(id) }
