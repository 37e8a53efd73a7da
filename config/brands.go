package config

import (
	"maps"
	"slices"

	"github.com/consentsync/consentsync/consent"
)

// BrandLister is source options that name brands of their own (a
// Mailchimp list's brand, a SendGrid group's): Config.Brands includes them.
type BrandLister interface{ Brands() []string }

// Brands returns, sorted, every brand the configuration names: sources'
// brands, the brands their options name (BrandLister: list and group
// brands), the brands of their consent fields, and destinations' brands. These are the brands an eligibility question
// may name and an all-brands withdrawal covers.
func (c *Config) Brands() []string {
	set := map[string]bool{}
	for _, s := range c.Sources {
		set[s.Brand] = true
		if o, ok := s.Options.(BrandLister); ok {
			for _, b := range o.Brands() {
				set[b] = true
			}
		}
		if s.Fields != nil {
			for _, f := range s.Fields.Consents {
				if f.Brand != "" {
					set[f.Brand] = true
				}
			}
		}
	}
	for _, d := range c.Destinations {
		set[d.Brand] = true
	}
	delete(set, "")
	return slices.Sorted(maps.Keys(set))
}

// Rules is the part of the policy the consent rules read
// (consent.Policy): one mapping for the worker and the service layer.
func (p Policy) Rules() consent.Policy {
	return consent.Policy{ConsentTTL: p.ConsentTTL, StrictQuality: p.StrictQuality, ProfessionalDomains: p.ProfessionalDomains}
}
