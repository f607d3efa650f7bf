package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// resourceProto is res in OTLP, made once per batcher.
func resourceProto(res *resource.Resource) *resourcepb.Resource {
	out := &resourcepb.Resource{}
	if res == nil {
		return out
	}
	for _, kv := range res.Attributes() {
		out.Attributes = append(out.Attributes, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
	}
	return out
}

// anyValue is v in OTLP, allocated: for the resource and the rare slice attribute.
func anyValue(v attribute.Value) *commonpb.AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.AsBool()}}
	case attribute.INT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.AsInt64()}}
	case attribute.FLOAT64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.AsFloat64()}}
	case attribute.STRING:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.AsString()}}
	case attribute.BOOLSLICE:
		return array(v.AsBoolSlice(), func(x bool) *commonpb.AnyValue { return anyValue(attribute.BoolValue(x)) })
	case attribute.INT64SLICE:
		return array(v.AsInt64Slice(), func(x int64) *commonpb.AnyValue { return anyValue(attribute.Int64Value(x)) })
	case attribute.FLOAT64SLICE:
		return array(v.AsFloat64Slice(), func(x float64) *commonpb.AnyValue { return anyValue(attribute.Float64Value(x)) })
	case attribute.STRINGSLICE:
		return array(v.AsStringSlice(), func(x string) *commonpb.AnyValue { return anyValue(attribute.StringValue(x)) })
	case attribute.BYTESLICE:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v.AsByteSlice()}}
	case attribute.SLICE:
		return array(v.AsSlice(), anyValue)
	case attribute.MAP:
		kvs := &commonpb.KeyValueList{}
		for _, kv := range v.AsMap() {
			kvs.Values = append(kvs.Values, &commonpb.KeyValue{Key: string(kv.Key), Value: anyValue(kv.Value)})
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: kvs}}
	default: // EMPTY
		return &commonpb.AnyValue{}
	}
}

func array[T any](xs []T, conv func(T) *commonpb.AnyValue) *commonpb.AnyValue {
	vals := make([]*commonpb.AnyValue, 0, len(xs))
	for _, x := range xs {
		vals = append(vals, conv(x))
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}}
}
