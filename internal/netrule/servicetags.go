package netrule

import (
	"strings"
	"sync"
)

// ServiceTag is how the assessment counts an Azure service tag used as the
// source of an inbound rule.
type ServiceTag struct {
	Name string
	// InternetFacing: the tag's addresses include ones that anyone can
	// send from (Internet; AzureCloud, which holds every Azure customer's
	// public addresses), so a rule allowing it exposes the port to the
	// internet. Every other service tag stands for addresses Microsoft
	// operates for one service, which no outside party can originate
	// connections from: such a rule is not internet exposure.
	InternetFacing bool
	// Regional: the tag may carry a region suffix (Storage.WestEurope).
	Regional bool
}

// serviceTags are the service tags Azure documents for NSG rules
// (learn.microsoft.com/azure/virtual-network/service-tags-overview), beyond
// the three modelled by address (Internet, VirtualNetwork,
// AzureLoadBalancer), which parseAddrEntry handles first.
// Built on first use (sync.OnceValue), not at package init: every CLI call
// links this package, few look a tag up.
var serviceTags = sync.OnceValue(func() map[string]ServiceTag {
	m := map[string]ServiceTag{}
	add := func(regional bool, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = ServiceTag{Name: n, Regional: regional}
		}
	}
	add(false, "ActionGroup", "ApplicationInsightsAvailability", "AppConfiguration", "AppServiceManagement",
		"AzureActiveDirectory", "AzureActiveDirectoryDomainServices", "AzureAdvancedThreatProtection",
		"AzureArcInfrastructure", "AzureAttestation", "AzureBackup", "AzureBotService", "AzureCognitiveSearch",
		"AzureDatabricks", "AzureDataExplorerManagement", "AzureDataLake", "AzureDevSpaces", "AzureDevOps",
		"AzureDigitalTwins", "AzureEventGrid", "AzureFrontDoor.Frontend", "AzureFrontDoor.Backend",
		"AzureFrontDoor.FirstParty", "AzureInformationProtection", "AzureMonitor", "AzureOpenDatasets",
		"AzurePlatformDNS", "AzurePlatformIMDS", "AzurePlatformLKM", "AzureResourceManager", "AzureSignalR",
		"AzureSiteRecovery", "AzureTrafficManager", "BatchNodeManagement", "CognitiveServicesManagement",
		"DataFactory", "DataFactoryManagement", "EOPExternalPublishedIPs", "GatewayManager",
		"GuestAndHybridManagement", "LogicApps", "LogicAppsManagement", "MicrosoftCloudAppSecurity",
		"PowerBI", "PowerQueryOnline", "ServiceFabric", "SqlManagement", "StorageSyncService",
		"WindowsVirtualDesktop", "AzureMachineLearning")
	add(true, "ApiManagement", "AppService", "AzureConnectors", "AzureContainerRegistry", "AzureCosmosDB",
		"AzureIoTHub", "AzureKeyVault", "Dynamics365ForMarketingEmail", "EventHub", "HDInsight",
		"MicrosoftContainerRegistry", "ServiceBus", "Sql", "Storage")
	m["azurecloud"] = ServiceTag{Name: "AzureCloud", InternetFacing: true, Regional: true}
	return m
})

// LookupServiceTag returns the documented service tag s names (any case, a
// regional tag with a ".Region" suffix), or false. Internet, VirtualNetwork
// and AzureLoadBalancer, and their classic spellings, are reported too.
func LookupServiceTag(s string) (ServiceTag, bool) {
	l := strings.ToLower(strings.TrimSpace(s))
	switch l {
	case "internet":
		return ServiceTag{Name: TagInternet, InternetFacing: true}, true
	case "virtualnetwork", "virtual_network":
		return ServiceTag{Name: TagVirtualNetwork}, true
	case "azureloadbalancer", "azure_loadbalancer":
		return ServiceTag{Name: TagAzureLoadBalancer}, true
	}
	if t, ok := serviceTags()[l]; ok {
		return t, true
	}
	if i := strings.LastIndexByte(l, '.'); i > 0 {
		if t, ok := serviceTags()[l[:i]]; ok && t.Regional && i < len(l)-1 {
			t.Name = s
			return t, true
		}
	}
	return ServiceTag{}, false
}
