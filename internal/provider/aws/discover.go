package aws

import (
	"context"
	"encoding/json"
	"fmt"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DiscoverAPI is the part of *ec2.Client discovery uses.
type DiscoverAPI interface {
	ec2.DescribeInstancesAPIClient
	ec2.DescribeNetworkInterfacesAPIClient
	ec2.DescribeSecurityGroupsAPIClient
}

// Discovered is an account's instances, network interfaces and security
// groups in one region, in the shapes `aws ec2 describe-…` prints (the SDK's
// types have the same field names), so it is an inventory document
// `inventory apply` reads as it reads the CLI's output.
type Discovered struct {
	SecurityGroups    []types.SecurityGroup    `json:"SecurityGroups"`
	Reservations      []types.Reservation      `json:"Reservations"`
	NetworkInterfaces []types.NetworkInterface `json:"NetworkInterfaces"`
}

// Document encodes d as an inventory document.
func (d *Discovered) Document() ([]byte, error) { return json.Marshal(d) }

// Discover lists every instance (terminated ones are dropped when applied),
// network interface and security group with the SDK's paginators, pageSize
// items per call (5-1000; 0 means 1000).
func Discover(ctx context.Context, c DiscoverAPI, pageSize int32) (*Discovered, error) {
	if pageSize == 0 {
		pageSize = 1000
	}
	d := &Discovered{}
	sg := ec2.NewDescribeSecurityGroupsPaginator(c, &ec2.DescribeSecurityGroupsInput{MaxResults: awssdk.Int32(pageSize)})
	for sg.HasMorePages() {
		p, err := sg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe security groups: %w", err)
		}
		d.SecurityGroups = append(d.SecurityGroups, p.SecurityGroups...)
	}
	in := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: awssdk.Int32(pageSize)})
	for in.HasMorePages() {
		p, err := in.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		d.Reservations = append(d.Reservations, p.Reservations...)
	}
	ni := ec2.NewDescribeNetworkInterfacesPaginator(c, &ec2.DescribeNetworkInterfacesInput{MaxResults: awssdk.Int32(pageSize)})
	for ni.HasMorePages() {
		p, err := ni.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe network interfaces: %w", err)
		}
		d.NetworkInterfaces = append(d.NetworkInterfaces, p.NetworkInterfaces...)
	}
	return d, nil
}
