package ec2sim

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// params is the request form with helpers for EC2's flattened lists
// ("GroupId.1", "IpPermissions.2.IpRanges.1.CidrIp").
type params url.Values

func (p params) get(k string) string { return url.Values(p).Get(k) }

// list returns the values of k.1, k.2, … in order.
func (p params) list(k string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[k+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// sub returns the members k.1, k.2, … as their own params (the prefix
// stripped), in order.
func (p params) sub(k string) []params {
	idx := map[int]params{}
	pre := k + "."
	for key, v := range p {
		if !strings.HasPrefix(key, pre) {
			continue
		}
		n, rest, ok := strings.Cut(key[len(pre):], ".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		if idx[i] == nil {
			idx[i] = params{}
		}
		idx[i][rest] = v
	}
	keys := make([]int, 0, len(idx))
	for i := range idx {
		keys = append(keys, i)
	}
	sort.Ints(keys)
	out := make([]params, 0, len(keys))
	for _, i := range keys {
		out = append(out, idx[i])
	}
	return out
}

// tags reads "Tag.N.Key"/"Tag.N.Value" members.
func (p params) tags(k string) []Tag {
	var out []Tag
	for _, t := range p.sub(k) {
		out = append(out, Tag{t.get("Key"), t.get("Value")})
	}
	return out
}
