package haproxy

import (
	"testing"
)

func TestReplyLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply Reply
		want  string
	}{
		{name: "ready", reply: Reply{Admin: AdminReady, WeightPercent: 50}, want: "up 50%\n"},
		{name: "ready announced", reply: Reply{Admin: AdminReady, AnnounceReady: true, WeightPercent: 75}, want: "ready up 75%\n"},
		{name: "ready announced without weight", reply: Reply{Admin: AdminReady, AnnounceReady: true}, want: "ready up\n"},
		{name: "weight omitted when 0", reply: Reply{Admin: AdminReady}, want: "up\n"},
		{name: "negative weight omitted", reply: Reply{Admin: AdminReady, WeightPercent: -3}, want: "up\n"},
		{name: "weight 1", reply: Reply{Admin: AdminReady, WeightPercent: 1}, want: "up 1%\n"},
		{name: "weight at the cap", reply: Reply{Admin: AdminReady, WeightPercent: 256}, want: "up 256%\n"},
		{name: "weight capped at 256", reply: Reply{Admin: AdminReady, WeightPercent: 257}, want: "up 256%\n"},
		{name: "weight far over the cap", reply: Reply{Admin: AdminReady, WeightPercent: 100000}, want: "up 256%\n"},
		{name: "maxconn", reply: Reply{Admin: AdminReady, WeightPercent: 100, Maxconn: 300}, want: "up 100% maxconn:300\n"},
		{name: "maxconn without weight", reply: Reply{Admin: AdminReady, Maxconn: 7}, want: "up maxconn:7\n"},
		{name: "negative maxconn omitted", reply: Reply{Admin: AdminReady, WeightPercent: 10, Maxconn: -1}, want: "up 10%\n"},
		{name: "drain", reply: Reply{Admin: AdminDrain, WeightPercent: 40}, want: "drain up 40%\n"},
		{name: "drain without weight", reply: Reply{Admin: AdminDrain}, want: "drain up\n"},
		{name: "drain never announces ready", reply: Reply{Admin: AdminDrain, AnnounceReady: true, WeightPercent: 40}, want: "drain up 40%\n"},
		{name: "drain with maxconn", reply: Reply{Admin: AdminDrain, WeightPercent: 300, Maxconn: 10}, want: "drain up 256% maxconn:10\n"},
		{name: "maint", reply: Reply{Admin: AdminMaint}, want: "maint\n"},
		{name: "maint drops weight, maxconn and ready", reply: Reply{Admin: AdminMaint, AnnounceReady: true, WeightPercent: 40, Maxconn: 10}, want: "maint\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.reply.Line(); got != tt.want {
				t.Errorf("%+v.Line() = %q, want %q", tt.reply, got, tt.want)
			}
		})
	}
}

func TestParseAdmin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Admin
		wantErr bool
	}{
		{in: "ready", want: AdminReady},
		{in: "drain", want: AdminDrain},
		{in: "maint", want: AdminMaint},
		{in: "DRAIN", want: AdminDrain},
		{in: " Maint\n", want: AdminMaint},
		{in: "", wantErr: true},
		{in: "up", wantErr: true},
		{in: "maintenance", wantErr: true},
		{in: "admin(7)", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAdmin(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAdmin(%q) error = %v, want error: %t", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseAdmin(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAdminString(t *testing.T) {
	t.Parallel()
	for _, a := range []Admin{AdminReady, AdminDrain, AdminMaint} {
		got, err := ParseAdmin(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAdmin(%q) = %v, %v; want %v, nil", a.String(), got, err, a)
		}
	}
	if got, want := Admin(7).String(), "admin(7)"; got != want {
		t.Errorf("Admin(7).String() = %q, want %q", got, want)
	}
}
