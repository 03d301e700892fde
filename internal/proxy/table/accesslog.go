package table

import (
	"errors"
	"fmt"
	"strconv"

	accesslogv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/accesslog/v3"
	corev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/config/core/v3"
	filev3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/meshlens/meshlens/internal/xdsproto/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// accessLogs compiles the file, stdout and stderr access loggers. Other
// loggers (gRPC, OpenTelemetry) are skipped: they only add output. An
// access log filter is skipped too, so such a log records every request.
func accessLogs(logs []*accesslogv3.AccessLog) ([]AccessLog, error) {
	var out []AccessLog
	for i, al := range logs {
		tc := al.GetTypedConfig()
		var (
			l   AccessLog
			err error
		)
		switch {
		case tc.GetTypeUrl() == typeFileLog || (tc == nil && al.GetName() == nameFileLog):
			var f filev3.FileAccessLog
			if err = unpack(tc, &f); err == nil {
				l, err = fileLog(&f)
			}
		case tc.GetTypeUrl() == typeStdoutLog:
			var s streamv3.StdoutAccessLog
			if err = unpack(tc, &s); err == nil {
				l = AccessLog{Path: "/dev/stdout"}
				err = substitutionFormat(s.GetLogFormat(), &l)
			}
		case tc.GetTypeUrl() == typeStderrLog:
			var s streamv3.StderrAccessLog
			if err = unpack(tc, &s); err == nil {
				l = AccessLog{Path: "/dev/stderr"}
				err = substitutionFormat(s.GetLogFormat(), &l)
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("access_log[%d]: %w", i, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func fileLog(f *filev3.FileAccessLog) (AccessLog, error) {
	l := AccessLog{Path: f.GetPath()}
	var err error
	switch v := f.GetAccessLogFormat().(type) {
	case nil:
	case *filev3.FileAccessLog_Format:
		l.Format = v.Format
	case *filev3.FileAccessLog_JsonFormat:
		l.JSONFormat, err = jsonFormat(v.JsonFormat)
	case *filev3.FileAccessLog_TypedJsonFormat:
		l.JSONFormat, err = jsonFormat(v.TypedJsonFormat)
	case *filev3.FileAccessLog_LogFormat:
		err = substitutionFormat(v.LogFormat, &l)
	}
	return l, err
}

// substitutionFormat reads a SubstitutionFormatString into l.
func substitutionFormat(s *corev3.SubstitutionFormatString, l *AccessLog) error {
	if s == nil {
		return nil
	}
	if len(s.GetFormatters()) > 0 {
		return errors.New("log_format.formatters " + errNotSupported)
	}
	var err error
	switch v := s.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		l.Format = v.TextFormat
	case *corev3.SubstitutionFormatString_TextFormatSource:
		switch d := v.TextFormatSource.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			l.Format = d.InlineString
		case *corev3.DataSource_InlineBytes:
			l.Format = string(d.InlineBytes)
		default:
			return errors.New("log_format.text_format_source: only inline formats are supported")
		}
	case *corev3.SubstitutionFormatString_JsonFormat:
		l.JSONFormat, err = jsonFormat(v.JsonFormat)
	}
	if err != nil {
		return fmt.Errorf("log_format: %w", err)
	}
	return nil
}

// jsonFormat flattens a JSON format to key/format pairs. Constants that
// are not strings keep their JSON spelling; nesting is refused.
func jsonFormat(s *structpb.Struct) (map[string]string, error) {
	out := make(map[string]string, len(s.GetFields()))
	for k, v := range s.GetFields() {
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			out[k] = x.StringValue
		case *structpb.Value_NumberValue:
			out[k] = strconv.FormatFloat(x.NumberValue, 'g', -1, 64)
		case *structpb.Value_BoolValue:
			out[k] = strconv.FormatBool(x.BoolValue)
		default:
			return nil, fmt.Errorf("json_format: key %q: nested or null values are not supported", k)
		}
	}
	return out, nil
}
