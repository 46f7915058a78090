package inventory

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The shapes `aws ec2 describe-instances` and `aws ec2
// describe-network-interfaces` print, reduced to what the model needs; the
// many other fields they print are ignored. (`aws ec2
// describe-security-groups` output needs no conversion: its "SecurityGroups"
// is the document's securityGroups.)
type awsInstancesDoc struct {
	Reservations []struct {
		OwnerID   string `json:"OwnerId"`
		Instances []struct {
			InstanceID string `json:"InstanceId"`
			State      struct {
				Name string `json:"Name"`
			} `json:"State"`
			Placement struct {
				AvailabilityZone string `json:"AvailabilityZone"`
			} `json:"Placement"`
			Tags              []struct{ Key, Value string } `json:"Tags"`
			NetworkInterfaces []awsENI                      `json:"NetworkInterfaces"`
		} `json:"Instances"`
	} `json:"Reservations"`
	NetworkInterfaces []awsENI `json:"NetworkInterfaces"`
}

type awsENI struct {
	NetworkInterfaceID string `json:"NetworkInterfaceId"`
	SubnetID           string `json:"SubnetId"`
	AvailabilityZone   string `json:"AvailabilityZone"`
	Attachment         *struct {
		DeviceIndex int    `json:"DeviceIndex"`
		InstanceID  string `json:"InstanceId"`
	} `json:"Attachment"`
	Groups []struct {
		GroupID string `json:"GroupId"`
	} `json:"Groups"`
	PrivateIPAddresses []struct {
		PrivateIPAddress string `json:"PrivateIpAddress"`
	} `json:"PrivateIpAddresses"`
	Association *struct {
		PublicIP string `json:"PublicIp"`
	} `json:"Association"`
}

// AWSInstanceID is the resource ID drawbridge gives an EC2 instance, in the
// hierarchy RBAC scopes use: the account stands for the subscription and
// the region for the resource group.
func AWSInstanceID(account, region, instanceID string) string {
	if account == "" {
		account = "unknown"
	}
	if region == "" {
		region = "unknown"
	}
	return "/subscriptions/aws-" + account + "/resourceGroups/" + region + "/providers/AWS.EC2/instances/" + instanceID
}

// regionOf turns an availability zone ("eu-west-1a") into its region.
func regionOf(az string) string {
	return strings.TrimRight(az, "abcdefghijklmnopqrstuvwxyz")
}

// splitAWSOutput takes the "Reservations" and "NetworkInterfaces" keys (as
// the AWS CLI prints them) out of a JSON document and returns the document
// without them, with the VMs and ENIs they describe. Instances become VMs of
// provider "aws"; terminated ones are skipped.
func splitAWSOutput(doc []byte) ([]byte, []VM, []ENI, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return doc, nil, nil, nil // not an object: the strict parse reports it
	}
	raw := map[string]json.RawMessage{}
	for k, v := range top {
		if strings.EqualFold(k, "Reservations") || strings.EqualFold(k, "NetworkInterfaces") {
			raw[k] = v
			delete(top, k)
		}
	}
	if len(raw) == 0 {
		return doc, nil, nil, nil
	}
	b, _ := json.Marshal(raw)
	var in awsInstancesDoc
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, nil, nil, fmt.Errorf("reading AWS CLI output (Reservations, NetworkInterfaces): %w", err)
	}
	enis := map[string]ENI{}
	var order []string
	addENI := func(e awsENI) {
		x := ENI{ID: e.NetworkInterfaceID, SubnetID: e.SubnetID, SecurityGroups: []string{}}
		for _, g := range e.Groups {
			x.SecurityGroups = append(x.SecurityGroups, g.GroupID)
		}
		for _, p := range e.PrivateIPAddresses {
			if a, err := netip.ParseAddr(p.PrivateIPAddress); err == nil {
				x.PrivateIPs = append(x.PrivateIPs, a)
			}
		}
		if e.Association != nil {
			if a, err := netip.ParseAddr(e.Association.PublicIP); err == nil {
				x.PublicIP = a
			}
		}
		if _, ok := enis[x.ID]; !ok {
			order = append(order, x.ID)
		}
		enis[x.ID] = x
	}
	var vms []VM
	for _, r := range in.Reservations {
		for _, i := range r.Instances {
			if i.State.Name == "terminated" || i.InstanceID == "" {
				continue
			}
			region := regionOf(i.Placement.AvailabilityZone)
			vm := VM{ID: AWSInstanceID(r.OwnerID, region, i.InstanceID), Name: i.InstanceID, Cloud: AWS, Provider: ProviderAWS,
				Location: region, InstanceID: i.InstanceID}
			for _, t := range i.Tags {
				if t.Key == "Name" && t.Value != "" {
					vm.Name = t.Value
				}
			}
			nis := i.NetworkInterfaces
			sort.SliceStable(nis, func(a, b int) bool { return deviceIndex(nis[a]) < deviceIndex(nis[b]) })
			for _, n := range nis {
				addENI(n)
				vm.ENIs = append(vm.ENIs, n.NetworkInterfaceID)
			}
			vms = append(vms, vm)
		}
	}
	for _, n := range in.NetworkInterfaces { // the fuller view wins
		addENI(n)
	}
	out := make([]ENI, 0, len(order))
	for _, id := range order {
		out = append(out, enis[id])
	}
	rest, err := json.Marshal(top)
	if err != nil {
		return nil, nil, nil, err
	}
	return rest, vms, out, nil
}

func deviceIndex(e awsENI) int {
	if e.Attachment == nil {
		return 1 << 30
	}
	return e.Attachment.DeviceIndex
}
