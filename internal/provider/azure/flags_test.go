package azure_test

import "flag"

var benchVMs = flag.Int("vms", 1000, "VMs in the enable and discovery benchmarks")
