package marathonsim

// convertLegacy rewrites the 1.4 networking and artifact fields into the
// 1.5 format, refusing the mixtures Marathon's old-API validator refuses.
func convertLegacy(app map[string]any) []detail {
	var errs []detail
	c := obj(app["container"])
	d := obj(c["docker"])
	_, legacyNet := d["network"]
	_, legacyPM := d["portMappings"]
	_, ipAddr := app["ipAddress"]
	_, nets := app["networks"]
	if _, ok := c["portMappings"]; ok && legacyPM {
		errs = append(errs, detail{"/container", "cannot specify both portMappings and docker.portMappings"})
	}
	if (legacyNet || ipAddr) && nets {
		errs = append(errs, detail{"/", "cannot mix deprecated and canonical network APIs"})
	}
	if _, ok := app["ports"]; ok {
		if _, ok := app["portDefinitions"]; ok {
			errs = append(errs, detail{"/", "You cannot specify both ports and port definitions"})
		}
	}
	if _, ok := app["uris"]; ok {
		if _, ok := app["fetch"]; ok {
			errs = append(errs, detail{"/", "You cannot specify both uris and fetch fields"})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	ip := obj(app["ipAddress"])
	netName, _ := ip["networkName"].(string)
	if netName == "" {
		netName = defaultNetworkName
	}
	if legacyNet {
		switch d["network"] {
		case "HOST":
			app["networks"] = []any{map[string]any{"mode": "host"}}
		case "BRIDGE":
			app["networks"] = []any{map[string]any{"mode": "container/bridge"}}
		case "USER":
			app["networks"] = []any{map[string]any{"mode": "container", "name": netName}}
		}
		delete(d, "network")
	} else if ipAddr {
		app["networks"] = []any{map[string]any{"mode": "container", "name": netName}}
	}
	if legacyPM {
		c["portMappings"] = d["portMappings"]
		delete(d, "portMappings")
	}
	if ipAddr {
		if ports := arr(obj(ip["discovery"])["ports"]); len(ports) > 0 {
			if c == nil {
				c = map[string]any{"type": "MESOS"}
				app["container"] = c
			}
			if _, ok := c["portMappings"]; !ok {
				var pms []any
				for _, p := range ports {
					po := obj(p)
					pm := map[string]any{"containerPort": po["number"]}
					for _, k := range []string{"name", "protocol", "labels"} {
						if v, ok := po[k]; ok {
							pm[k] = v
						}
					}
					pms = append(pms, pm)
				}
				c["portMappings"] = pms
			}
		}
		delete(app, "ipAddress")
	}
	if ports, ok := app["ports"]; ok {
		var pds []any
		for _, p := range arr(ports) {
			pds = append(pds, map[string]any{"port": p})
		}
		if pds == nil {
			pds = []any{}
		}
		app["portDefinitions"] = pds
		delete(app, "ports")
	}
	if uris, ok := app["uris"]; ok {
		var fetch []any
		for _, u := range arr(uris) {
			fetch = append(fetch, map[string]any{"uri": u})
		}
		app["fetch"] = fetch
		delete(app, "uris")
	}
	return nil
}

// mergeUpdate applies a partial update the way Marathon's AppUpdate does:
// each top-level field in the body replaces the stored one wholesale. When
// the body switches networking format the stored counterparts go, so the
// result is never a mixture of the 1.4 and 1.5 formats.
func mergeUpdate(stored, body map[string]any) map[string]any {
	merged := deepCopy(stored).(map[string]any)
	for k, v := range body {
		merged[k] = deepCopy(v)
	}
	d := obj(obj(body["container"])["docker"])
	_, legacyNet := d["network"]
	_, ipAddr := body["ipAddress"]
	if _, nets := body["networks"]; !nets && (legacyNet || ipAddr) {
		delete(merged, "networks")
	}
	if _, ok := body["ports"]; ok {
		delete(merged, "portDefinitions")
	}
	if _, ok := body["uris"]; ok {
		delete(merged, "fetch")
	}
	return merged
}
