package ec2sim

import "encoding/xml"

// The response shapes below follow EC2's XML (the element names
// aws-sdk-go-v2's ec2 deserializers read).

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlGroupRef struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName,omitempty"`
}

type xmlIPRange struct {
	CidrIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xmlIPv6Range struct {
	CidrIPv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type xmlPrefixList struct {
	PrefixListID string `xml:"prefixListId"`
	Description  string `xml:"description,omitempty"`
}

type xmlPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	Description string `xml:"description,omitempty"`
}

type xmlPermission struct {
	IPProtocol  string          `xml:"ipProtocol"`
	FromPort    *int32          `xml:"fromPort,omitempty"`
	ToPort      *int32          `xml:"toPort,omitempty"`
	Groups      []xmlPair       `xml:"groups>item"`
	IPRanges    []xmlIPRange    `xml:"ipRanges>item"`
	IPv6Ranges  []xmlIPv6Range  `xml:"ipv6Ranges>item"`
	PrefixLists []xmlPrefixList `xml:"prefixListIds>item"`
}

type xmlSecurityGroup struct {
	OwnerID          string          `xml:"ownerId"`
	GroupID          string          `xml:"groupId"`
	GroupName        string          `xml:"groupName"`
	GroupDescription string          `xml:"groupDescription"`
	IPPermissions    []xmlPermission `xml:"ipPermissions>item"`
	IPPermsEgress    []xmlPermission `xml:"ipPermissionsEgress>item"`
	VpcID            string          `xml:"vpcId,omitempty"`
	SecurityGroupArn string          `xml:"securityGroupArn"`
	Tags             []xmlTag        `xml:"tagSet>item,omitempty"`
}

type meta struct {
	RequestID string `xml:"requestId"`
}

func (m *meta) setRequestID(id string) { m.RequestID = id }

type describeSecurityGroupsResponse struct {
	XMLName xml.Name `xml:"DescribeSecurityGroupsResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Groups    []xmlSecurityGroup `xml:"securityGroupInfo>item"`
	NextToken string             `xml:"nextToken,omitempty"`
}

type xmlAttachment struct {
	AttachmentID string `xml:"attachmentId"`
	InstanceID   string `xml:"instanceId,omitempty"`
	DeviceIndex  int    `xml:"deviceIndex"`
	Status       string `xml:"status"`
}

type xmlAssociation struct {
	PublicIP string `xml:"publicIp"`
}

type xmlPrivateIP struct {
	PrivateIPAddress string `xml:"privateIpAddress"`
	Primary          bool   `xml:"primary"`
}

type xmlNetworkInterface struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId,omitempty"`
	VpcID              string          `xml:"vpcId,omitempty"`
	OwnerID            string          `xml:"ownerId"`
	Status             string          `xml:"status"`
	InterfaceType      string          `xml:"interfaceType"`
	PrivateIPAddress   string          `xml:"privateIpAddress,omitempty"`
	PrivateIPs         []xmlPrivateIP  `xml:"privateIpAddressesSet>item,omitempty"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	Groups             []xmlGroupRef   `xml:"groupSet>item"`
	Attachment         *xmlAttachment  `xml:"attachment,omitempty"`
	Association        *xmlAssociation `xml:"association,omitempty"`
	Tags               []xmlTag        `xml:"tagSet>item,omitempty"`
}

type describeNetworkInterfacesResponse struct {
	XMLName xml.Name `xml:"DescribeNetworkInterfacesResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Interfaces []xmlNetworkInterface `xml:"networkInterfaceSet>item"`
	NextToken  string                `xml:"nextToken,omitempty"`
}

type xmlInstanceState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlInstanceNI struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId,omitempty"`
	VpcID              string          `xml:"vpcId,omitempty"`
	OwnerID            string          `xml:"ownerId"`
	Status             string          `xml:"status"`
	PrivateIPAddress   string          `xml:"privateIpAddress,omitempty"`
	Groups             []xmlGroupRef   `xml:"groupSet>item"`
	Attachment         *xmlAttachment  `xml:"attachment,omitempty"`
	Association        *xmlAssociation `xml:"association,omitempty"`
}

type xmlInstance struct {
	InstanceID       string           `xml:"instanceId"`
	ImageID          string           `xml:"imageId"`
	State            xmlInstanceState `xml:"instanceState"`
	InstanceType     string           `xml:"instanceType"`
	Placement        xmlPlacement     `xml:"placement"`
	PrivateIPAddress string           `xml:"privateIpAddress,omitempty"`
	IPAddress        string           `xml:"ipAddress,omitempty"`
	SubnetID         string           `xml:"subnetId,omitempty"`
	VpcID            string           `xml:"vpcId,omitempty"`
	Groups           []xmlGroupRef    `xml:"groupSet>item"`
	Interfaces       []xmlInstanceNI  `xml:"networkInterfaceSet>item"`
	Tags             []xmlTag         `xml:"tagSet>item,omitempty"`
}

type xmlPlacement struct {
	AvailabilityZone string `xml:"availabilityZone"`
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type describeInstancesResponse struct {
	XMLName xml.Name `xml:"DescribeInstancesResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Reservations []xmlReservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type createSecurityGroupResponse struct {
	XMLName xml.Name `xml:"CreateSecurityGroupResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Return  bool     `xml:"return"`
	GroupID string   `xml:"groupId"`
	Tags    []xmlTag `xml:"tagSet>item,omitempty"`
}

type xmlRule struct {
	RuleID     string `xml:"securityGroupRuleId"`
	GroupID    string `xml:"groupId"`
	OwnerID    string `xml:"groupOwnerId"`
	IsEgress   bool   `xml:"isEgress"`
	IPProtocol string `xml:"ipProtocol"`
	FromPort   int32  `xml:"fromPort"`
	ToPort     int32  `xml:"toPort"`
	CidrIPv4   string `xml:"cidrIpv4,omitempty"`
	CidrIPv6   string `xml:"cidrIpv6,omitempty"`
	PrefixList string `xml:"prefixListId,omitempty"`
	Desc       string `xml:"description,omitempty"`
}

type authorizeResponse struct {
	XMLName xml.Name `xml:"AuthorizeSecurityGroupIngressResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Return bool      `xml:"return"`
	Rules  []xmlRule `xml:"securityGroupRuleSet>item"`
}

type revokeResponse struct {
	XMLName xml.Name `xml:"RevokeSecurityGroupIngressResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	meta
	Return  bool            `xml:"return"`
	Unknown []xmlPermission `xml:"unknownIpPermissionSet>item,omitempty"`
}

type returnResponse struct {
	XMLName xml.Name
	Xmlns   string `xml:"xmlns,attr"`
	meta
	Return  bool   `xml:"return"`
	GroupID string `xml:"groupId,omitempty"`
}

func xmlTags(ts []Tag) []xmlTag {
	var out []xmlTag
	for _, t := range ts {
		out = append(out, xmlTag{t.Key, t.Value})
	}
	return out
}

// permissions groups rules into IpPermissions by (protocol, ports), in the
// order their first rule appears.
func permissions(owner string, rules []Rule) []xmlPermission {
	var out []xmlPermission
	idx := map[string]int{}
	for _, r := range rules {
		k := r.Protocol + "|" + itoa(r.From) + "|" + itoa(r.To)
		i, ok := idx[k]
		if !ok {
			p := xmlPermission{IPProtocol: r.Protocol}
			if hasPorts(r.Protocol) {
				from, to := r.From, r.To
				p.FromPort, p.ToPort = &from, &to
			}
			out = append(out, p)
			i = len(out) - 1
			idx[k] = i
		}
		p := &out[i]
		switch {
		case r.CIDRv4 != "":
			p.IPRanges = append(p.IPRanges, xmlIPRange{r.CIDRv4, r.Description})
		case r.CIDRv6 != "":
			p.IPv6Ranges = append(p.IPv6Ranges, xmlIPv6Range{r.CIDRv6, r.Description})
		case r.GroupID != "":
			p.Groups = append(p.Groups, xmlPair{owner, r.GroupID, r.Description})
		case r.PrefixListID != "":
			p.PrefixLists = append(p.PrefixLists, xmlPrefixList{r.PrefixListID, r.Description})
		}
	}
	return out
}
