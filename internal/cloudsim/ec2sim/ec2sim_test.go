package ec2sim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
)

func start(t *testing.T, key string, attempts int) (*ec2sim.Server, *ec2.Client) {
	t.Helper()
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDSIM", SecretKey: "secret", Region: "eu-west-1"})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	c := ec2.New(ec2.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(ts.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(key, "secret", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = 5 * time.Millisecond
		}),
	})
	return sim, c
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func seed(sim *ec2sim.Server, n int) {
	sim.PutGroup(ec2sim.Group{ID: "sg-0user", Name: "web", Description: "web", VpcID: "vpc-1",
		Ingress: []ec2sim.Rule{{Protocol: "tcp", From: 22, To: 22, CIDRv4: "0.0.0.0/0"}, {Protocol: "tcp", From: 22, To: 22, CIDRv6: "::/0"}}})
	for i := 0; i < n; i++ {
		eni := fmt.Sprintf("eni-%04d", i)
		sim.PutENI(ec2sim.ENI{ID: eni, VpcID: "vpc-1", SubnetID: "subnet-1", PrivateIP: fmt.Sprintf("10.0.%d.%d", i/200, i%200+1),
			InstanceID: fmt.Sprintf("i-%04d", i), Groups: []string{"sg-0user"}})
		sim.PutInstance(ec2sim.Instance{ID: fmt.Sprintf("i-%04d", i), VpcID: "vpc-1", SubnetID: "subnet-1", ENIs: []string{eni},
			Tags: []ec2sim.Tag{{Key: "Name", Value: fmt.Sprintf("vm%d", i)}}})
	}
}

func TestDescribeThroughSDKPaginates(t *testing.T) {
	sim, c := start(t, "AKIDSIM", 1)
	seed(sim, 23)
	ctx := context.Background()
	pages, n := 0, 0
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				n++
				if len(in.NetworkInterfaces) != 1 || aws.ToString(in.NetworkInterfaces[0].Groups[0].GroupId) != "sg-0user" {
					t.Fatalf("instance %s: interfaces %+v", aws.ToString(in.InstanceId), in.NetworkInterfaces)
				}
				if in.State == nil || in.State.Name != types.InstanceStateNameRunning {
					t.Fatalf("state %+v", in.State)
				}
			}
		}
	}
	if n != 23 || pages != 5 {
		t.Fatalf("got %d instances in %d pages, want 23 in 5", n, pages)
	}
	enis, err := c.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{"i-0007"}}}})
	if err != nil || len(enis.NetworkInterfaces) != 1 || aws.ToString(enis.NetworkInterfaces[0].Attachment.InstanceId) != "i-0007" {
		t.Fatalf("describe ENI by instance: %v %+v", err, enis)
	}
	sgs, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-0user"}})
	if err != nil {
		t.Fatal(err)
	}
	perms := sgs.SecurityGroups[0].IpPermissions
	if len(perms) != 1 || aws.ToInt32(perms[0].FromPort) != 22 || len(perms[0].IpRanges) != 1 || len(perms[0].Ipv6Ranges) != 1 {
		t.Fatalf("one permission with both ranges wanted, got %+v", perms)
	}
}

func TestWriteCallsAndErrorCodes(t *testing.T) {
	sim, c := start(t, "AKIDSIM", 1)
	seed(sim, 1)
	ctx := context.Background()
	created, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("jit-g1"), Description: aws.String("d"), VpcId: aws.String("vpc-1"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: []types.Tag{{Key: aws.String("drawbridge:grant"), Value: aws.String("g1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.GroupId)
	if _, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("jit-g1"), Description: aws.String("d"), VpcId: aws.String("vpc-1")}); code(err) != "InvalidGroup.Duplicate" {
		t.Fatalf("duplicate name: %v", err)
	}
	perm := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22), IpRanges: []types.IpRange{{CidrIp: aws.String("198.51.100.7/32")}}}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{perm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{perm}}); code(err) != "InvalidPermission.Duplicate" {
		t.Fatalf("duplicate rule: %v", err)
	}
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0000"), Groups: []string{"sg-0user", id}}); err != nil {
		t.Fatal(err)
	}
	if e, _ := sim.ENI("eni-0000"); len(e.Groups) != 2 {
		t.Fatalf("ENI groups %v", e.Groups)
	}
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id}); code(err) != "DependencyViolation" {
		t.Fatalf("delete attached group: %v", err)
	}
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0000"),
		Groups: []string{"sg-0user", id, id + "x", "sg-a", "sg-b", "sg-c"}}); code(err) != "SecurityGroupsPerInterfaceLimitExceeded" {
		t.Fatalf("six groups: %v", err)
	}
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{perm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &id, IpPermissions: []types.IpPermission{perm}}); code(err) != "InvalidPermission.NotFound" {
		t.Fatalf("revoke missing rule: %v", err)
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Fatal(err)
	}
	if g, _ := sim.Group(id); len(g.Tags) != 2 {
		t.Fatalf("tags %v", g.Tags)
	}
	if _, err := c.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: aws.String("eni-0000"), Groups: []string{"sg-0user"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id}); code(err) != "InvalidGroup.NotFound" {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestAuthAndFaults(t *testing.T) {
	sim, bad := start(t, "AKIDOTHER", 1)
	seed(sim, 1)
	ctx := context.Background()
	if _, err := bad.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); code(err) != "AuthFailure" {
		t.Fatalf("wrong access key: %v", err)
	}

	sim, c := start(t, "AKIDSIM", 1)
	seed(sim, 1)
	sim.SetFaults(ec2sim.Faults{ThrottleRate: 1})
	if _, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); code(err) != "RequestLimitExceeded" {
		t.Fatalf("throttled: %v", err)
	}
	sim.SetFaults(ec2sim.Faults{ErrorRate: 1})
	if _, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); code(err) != "InternalError" {
		t.Fatalf("500: %v", err)
	}

	// The SDK's retryer rides out throttling and 500s.
	sim, c = start(t, "AKIDSIM", 30)
	seed(sim, 1)
	sim.SetFaults(ec2sim.Faults{ThrottleRate: 0.3, ErrorRate: 0.2, Seed: 7})
	for i := 0; i < 20; i++ {
		if _, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{}); err != nil {
			t.Fatalf("call %d with retries: %v", i, err)
		}
	}

	// Delayed consistency: a new group is unknown for a while.
	sim.SetFaults(ec2sim.Faults{ConsistencyDelay: time.Hour})
	out, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("n"), Description: aws.String("d"), VpcId: aws.String("vpc-1")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{aws.ToString(out.GroupId)}},
		func(o *ec2.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) })
	if code(err) != "InvalidGroup.NotFound" {
		t.Fatalf("new group visible at once: %v", err)
	}
}

func TestRulesPerGroupQuota(t *testing.T) {
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDSIM", RulesPerGroup: 2})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	c := ec2.New(ec2.Options{Region: "eu-west-1", BaseEndpoint: aws.String(ts.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDSIM", "s", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })})
	sim.PutGroup(ec2sim.Group{ID: "sg-0q", Name: "q", Description: "q", VpcID: "vpc-1"})
	perm := func(cidrs ...string) []types.IpPermission {
		p := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(22), ToPort: aws.Int32(22)}
		for _, c := range cidrs {
			p.IpRanges = append(p.IpRanges, types.IpRange{CidrIp: aws.String(c)})
		}
		return []types.IpPermission{p}
	}
	ctx := context.Background()
	if _, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String("sg-0q"), IpPermissions: perm("10.0.0.0/8", "10.1.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: aws.String("sg-0q"), IpPermissions: perm("10.2.0.0/16")})
	if code(err) != "RulesPerSecurityGroupLimitExceeded" {
		t.Fatalf("third rule over a quota of 2: %v", err)
	}
	if g, _ := sim.Group("sg-0q"); len(g.Ingress) != 2 {
		t.Fatalf("rules %+v", g.Ingress)
	}
}

func TestWrongSecretIsRefused(t *testing.T) {
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDSIM", SecretKey: "secret"})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	mk := func(secret string) *ec2.Client {
		return ec2.New(ec2.Options{Region: "eu-west-1", BaseEndpoint: aws.String(ts.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDSIM", secret, ""),
			Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 })})
	}
	if _, err := mk("wrong").DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{}); code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := mk("secret").DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{"sg-1"}}); code(err) != "InvalidGroup.NotFound" {
		t.Fatalf("right secret: %v", err)
	}
}
