package attest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// TCBStatus is a TCB level status as named by Intel's TCB info and QE
// identity.
type TCBStatus string

// TCB statuses. Only UpToDate means "no known issue"; every other value
// except Revoked may be accepted by a [Policy]; Revoked is always refused.
const (
	StatusUpToDate                          TCBStatus = "UpToDate"
	StatusSWHardeningNeeded                 TCBStatus = "SWHardeningNeeded"
	StatusConfigurationNeeded               TCBStatus = "ConfigurationNeeded"
	StatusConfigurationAndSWHardeningNeeded TCBStatus = "ConfigurationAndSWHardeningNeeded"
	StatusOutOfDate                         TCBStatus = "OutOfDate"
	StatusOutOfDateConfigurationNeeded      TCBStatus = "OutOfDateConfigurationNeeded"
	StatusRevoked                           TCBStatus = "Revoked"
)

var knownStatuses = []TCBStatus{
	StatusUpToDate, StatusSWHardeningNeeded, StatusConfigurationNeeded,
	StatusConfigurationAndSWHardeningNeeded, StatusOutOfDate,
	StatusOutOfDateConfigurationNeeded, StatusRevoked,
}

func (s TCBStatus) validate() error {
	if !slices.Contains(knownStatuses, s) {
		return fmt.Errorf("unknown tcb status %q", s)
	}
	return nil
}

// converge folds the status of a dependent component (QE, TDX module) into
// the platform status the way Intel's QVL does: an out-of-date component
// makes an otherwise acceptable platform OutOfDate (or
// OutOfDateConfigurationNeeded when configuration is also needed).
func converge(platform, other TCBStatus) TCBStatus {
	if other == StatusRevoked || platform == StatusRevoked {
		return StatusRevoked
	}
	if other != StatusOutOfDate && other != StatusOutOfDateConfigurationNeeded {
		return platform
	}
	switch platform {
	case StatusUpToDate, StatusSWHardeningNeeded:
		return StatusOutOfDate
	case StatusConfigurationNeeded, StatusConfigurationAndSWHardeningNeeded:
		return StatusOutOfDateConfigurationNeeded
	}
	return platform
}

// maskedEqual reports whether value & mask == want (Intel's identity
// attributes and MISCSELECT are given after masking).
func maskedEqual(value, mask, want []byte) bool {
	if len(value) != len(mask) || len(want) != len(mask) {
		return false
	}
	for i := range value {
		if value[i]&mask[i] != want[i] {
			return false
		}
	}
	return true
}

// evalQE runs step 7: the QE report must match the identity, and its ISVSVN
// selects the QE TCB level (the first one whose isvsvn ≤ the QE's).
func evalQE(id *enclaveIdentity, qe *EnclaveReport) (*identityLevel, error) {
	if !bytes.Equal(id.MRSigner, qe.MRSigner[:]) {
		return nil, errorf(ReasonQEIdentityMismatch, "qe mrsigner %x, identity wants %x", qe.MRSigner, []byte(id.MRSigner))
	}
	if *id.ISVProdID != int(qe.ISVProdID) {
		return nil, errorf(ReasonQEIdentityMismatch, "qe isvprodid %d, identity wants %d", qe.ISVProdID, *id.ISVProdID)
	}
	// MISCSELECT is a little-endian u32 in the report and a big-endian hex
	// number in the identity.
	misc := binary.BigEndian.AppendUint32(nil, qe.MiscSelect)
	if !maskedEqual(misc, id.MiscSelectMask, id.MiscSelect) {
		return nil, errorf(ReasonQEIdentityMismatch, "qe miscselect %x does not match the identity", misc)
	}
	if !maskedEqual(qe.Attributes[:], id.AttributesMask, id.Attributes) {
		return nil, errorf(ReasonQEIdentityMismatch, "qe attributes %x do not match the identity", qe.Attributes)
	}
	l := selectIdentityLevel(id.TCBLevels, int(qe.ISVSVN))
	if l == nil {
		return nil, errorf(ReasonQETCBLevelNotFound, "qe isvsvn %d is below every qe identity tcb level", qe.ISVSVN)
	}
	if l.TCBStatus == StatusRevoked {
		return nil, errorf(ReasonQERevoked, "qe isvsvn %d is at a revoked tcb level", qe.ISVSVN)
	}
	return l, nil
}

func selectIdentityLevel(levels []identityLevel, svn int) *identityLevel {
	for i := range levels {
		if *levels[i].TCB.ISVSVN <= svn {
			return &levels[i]
		}
	}
	return nil
}

// platformTCB is the outcome of step 8.
type platformTCB struct {
	status       TCBStatus // platform level status
	moduleStatus TCBStatus // TDX module identity level status, "" if not evaluated
	date         time.Time
	advisories   []string
}

// evalPlatform runs step 8: the first TCB level whose SGX component SVNs and
// PCE SVN are all ≤ the PCK certificate's and, for TDX, whose TDX component
// SVNs are all ≤ the TD report's TEE_TCB_SVN.
//
// TDX rules (TCB info v3, as in Intel's QVL): the TDX module (MRSIGNERSEAM,
// SEAM attributes) must match tdxModule. When TEE_TCB_SVN[1] (the TDX module
// major version) is non-zero, the module is evaluated separately against
// tdxModuleIdentities["TDX_%02X" of TEE_TCB_SVN[1]] with TEE_TCB_SVN[0] as its
// ISVSVN, and tdxtcbcomponents[0..1] are skipped in the level comparison.
func evalPlatform(info *tcbInfo, pck *PCKExtensions, td *TDReport) (*platformTCB, error) {
	var out platformTCB
	if td != nil {
		l, err := evalTDXModule(info, td)
		if err != nil {
			return nil, err
		}
		if l != nil {
			out.moduleStatus = l.TCBStatus
			out.advisories = l.AdvisoryIDs
		}
	}
	for i := range info.TCBLevels {
		l := &info.TCBLevels[i]
		if !levelSatisfied(l, pck, td) {
			continue
		}
		if l.TCBStatus == StatusRevoked || out.moduleStatus == StatusRevoked {
			return nil, errorf(ReasonTCBRevoked, "platform tcb level of %s is revoked", l.TCBDate.Format(time.DateOnly))
		}
		out.status = l.TCBStatus
		out.date = l.TCBDate
		out.advisories = mergeIDs(l.AdvisoryIDs, out.advisories)
		return &out, nil
	}
	return nil, errorf(ReasonTCBLevelNotFound, "no tcb level of fmspc %x is satisfied by the platform (cpu svn components %x, pce svn %d%s)",
		[]byte(info.FMSPC), pck.TCBComponents, pck.PCESVN, teeSVNNote(td))
}

func teeSVNNote(td *TDReport) string {
	if td == nil {
		return ""
	}
	return fmt.Sprintf(", tee tcb svn %x", td.TEETCBSVN)
}

func levelSatisfied(l *tcbLevel, pck *PCKExtensions, td *TDReport) bool {
	for i, c := range l.TCB.SGX {
		if int(pck.TCBComponents[i]) < *c.SVN {
			return false
		}
	}
	if int(pck.PCESVN) < *l.TCB.PCESVN {
		return false
	}
	if td == nil {
		return true
	}
	start := 0
	if td.TEETCBSVN[1] > 0 {
		start = 2 // module version and SVN: evaluated by the module identity
	}
	for i := start; i < teeTCBSVNLength; i++ {
		if int(td.TEETCBSVN[i]) < *l.TCB.TDX[i].SVN {
			return false
		}
	}
	return true
}

// evalTDXModule checks the TDX module against the TCB info and, for modules
// with a major version, returns its identity TCB level.
func evalTDXModule(info *tcbInfo, td *TDReport) (*identityLevel, error) {
	m := info.TDXModule
	if !bytes.Equal(m.MRSigner, td.MRSignerSEAM[:]) || !maskedEqual(td.SEAMAttributes[:], m.AttributesMask, m.Attributes) {
		return nil, errorf(ReasonTDXModuleMismatch, "tdx module (mrsignerseam %x, seam attributes %x) does not match the tcb info", td.MRSignerSEAM, td.SEAMAttributes)
	}
	if td.TEETCBSVN[1] == 0 {
		return nil, nil
	}
	want := fmt.Sprintf("TDX_%02X", td.TEETCBSVN[1])
	for i := range info.TDXModuleIdentities {
		id := &info.TDXModuleIdentities[i]
		if id.ID != want {
			continue
		}
		if !bytes.Equal(id.MRSigner, td.MRSignerSEAM[:]) || !maskedEqual(td.SEAMAttributes[:], id.AttributesMask, id.Attributes) {
			return nil, errorf(ReasonTDXModuleMismatch, "tdx module does not match identity %s", want)
		}
		l := selectIdentityLevel(id.TCBLevels, int(td.TEETCBSVN[0]))
		if l == nil {
			return nil, errorf(ReasonTCBLevelNotFound, "tdx module %s svn %d is below every tcb level", want, td.TEETCBSVN[0])
		}
		return l, nil
	}
	return nil, errorf(ReasonTCBLevelNotFound, "tcb info has no tdx module identity %s", want)
}

// mergeIDs returns the union of the lists, in order, without duplicates.
func mergeIDs(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
