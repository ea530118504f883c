package v1alpha1

import (
	"reflect"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// zeroMeaningful are the number fields where 0 is a value of its own:
// Marathon picks a host or service port. Everywhere else an int, float or
// duration of 0 is what Default reads as "absent" and replaces, so an
// explicit 0 would silently become the default.
var zeroMeaningful = []string{"spec.app.hostPort", "spec.app.servicePort"}

// explicitZero reports a scalar written as 0 (0, 0.0, -0, 0x0, 0s) for a
// plain number or duration field. Pointer fields (app.instances,
// upgradeStrategy ratios) keep 0 apart from absent and are not checked;
// null and the empty value mean absent and are allowed.
func explicitZero(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" || slices.Contains(zeroMeaningful, path) {
		return false
	}
	switch {
	case t == reflect.TypeOf(Duration{}):
		d, err := time.ParseDuration(n.Value)
		return err == nil && d == 0
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		var x int64
		return n.Decode(&x) == nil && x == 0
	case t.Kind() == reflect.Float64:
		var f float64
		return n.Decode(&f) == nil && f == 0
	}
	return false
}

const zeroReason = "must not be 0: leave the field out to get the default, or give a value greater than 0"
