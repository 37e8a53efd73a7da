package service

import (
	"fmt"
	"slices"
	"strings"

	"github.com/consentsync/consentsync/consent"
)

// Question reads an eligibility question: channel and purpose default to
// email and marketing; the brand is required and must be one the
// configuration names (config.Config.Brands): "Acme" or "acme " is not
// "acme", and an answer about a brand nobody collects for would be
// meaningless. Errors wrap ErrBadQuestion.
func (s *Service) Question(channel, brand, purpose string) (consent.Question, error) {
	if channel == "" {
		channel = string(consent.ChannelEmail)
	}
	if purpose == "" {
		purpose = string(consent.PurposeMarketing)
	}
	ch, err := consent.ParseChannel(channel)
	if err != nil {
		return consent.Question{}, fmt.Errorf("%w: %v", ErrBadQuestion, err)
	}
	pu, err := consent.ParsePurpose(purpose)
	if err != nil {
		return consent.Question{}, fmt.Errorf("%w: %v", ErrBadQuestion, err)
	}
	if strings.TrimSpace(brand) == "" {
		return consent.Question{}, fmt.Errorf("%w: brand is required", ErrBadQuestion)
	}
	if !slices.Contains(s.Config.Brands(), brand) {
		return consent.Question{}, fmt.Errorf("%w: brand %q is not configured", ErrBadQuestion, brand)
	}
	return consent.Question{Channel: ch, Brand: brand, Purpose: pu}, nil
}

// Channels and Purposes are the ones every subject view answers for.
var (
	Channels = []consent.Channel{consent.ChannelEmail, consent.ChannelSMS, consent.ChannelPhone, consent.ChannelPost}
	Purposes = []consent.Purpose{consent.PurposeMarketing, consent.PurposePartners}
)
