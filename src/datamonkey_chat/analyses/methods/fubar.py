"""FUBAR: pervasive selection per site from posterior probabilities over an alpha-beta grid.

Upstream's FubarRequest has the grid and the Dirichlet prior; HyPhy 2.5.47 also lets one choose
the posterior estimator (variational Bayes, the default, or one of two MCMC samplers) and its
chain settings, which are additive options here. A site is called when its posterior
probability of beta > alpha (positive) or alpha > beta (negative) reaches `posterior`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from datamonkey_chat.analyses.methods import sites
from datamonkey_chat.analyses.methods.base import (
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
    Table,
    input_counts,
    number,
    rounded,
)
from datamonkey_chat.analyses.methods.options import GeneticCode, Posterior, YesNo

Estimator = Literal["Variational-Bayes", "Collapsed-Gibbs", "Metropolis-Hastings"]
VB: Estimator = "Variational-Bayes"
MH: Estimator = "Metropolis-Hastings"


class FubarOptions(MethodOptions):
    """Upstream's FubarRequest fields first, then HyPhy's estimator settings (additive)."""

    genetic_code: GeneticCode = "Universal"
    grid_points: Annotated[int, Field(ge=5, le=50)] = Field(
        20, description="Grid points per dimension (the grid has grid_points^2 points)"
    )
    concentration_parameter: Annotated[float, Field(ge=0.001, le=1)] = Field(
        0.5, description="Concentration parameter of the Dirichlet prior on grid weights"
    )
    # additive: not in upstream's FubarRequest
    posterior: Posterior = Field(
        0.9, description="Posterior probability a site needs to be called selected"
    )
    method: Estimator = Field(
        VB,
        description="Posterior estimator: Variational-Bayes (fastest, HyPhy's default), "
        "Collapsed-Gibbs, or Metropolis-Hastings (the 2013 paper's MCMC)",
    )
    chains: Annotated[int, Field(ge=2, le=20)] = Field(
        5, description="MCMC chains (Metropolis-Hastings only)"
    )
    chain_length: Annotated[int, Field(ge=5_000, le=50_000_000)] = Field(
        2_000_000, description="Steps per chain (MCMC estimators only)"
    )
    burn_in: int | None = Field(
        None,
        description="Steps discarded as burn-in (MCMC only); default half the chain, "
        "allowed 5% to 95% of it",
    )
    samples: Annotated[int, Field(ge=50)] = Field(
        100, description="Samples drawn from each chain (MCMC only)"
    )
    non_zero: YesNo = Field(
        "No", description="Exclude zero synonymous rates from the grid (finite dN/dS)"
    )

    @model_validator(mode="after")
    def _chain_fits(self) -> FubarOptions:
        # HyPhy's own bounds (FUBAR.bf RunPrompts), checked here so HyPhy never refuses them
        burn_in = self.chain_length // 2 if self.burn_in is None else self.burn_in
        low, high = self.chain_length // 20, self.chain_length * 95 // 100
        if not low <= burn_in <= high:
            raise ValueError(f"burn_in must be between {low} and {high} for this chain_length")
        if self.samples > self.chain_length - burn_in:
            raise ValueError("samples must not exceed chain_length - burn_in")
        return self


class FubarSites(sites.SelectedSites):
    posterior_threshold: float
    expected_false_positives: float | None = Field(
        None, description="sum of (1 - posterior) over the sites called positive"
    )


class Fubar(HyPhyMethod):
    id = "fubar"
    keyword = "fubar"
    name = "FUBAR"
    Options = FubarOptions
    summary_model = FubarSites
    plots_shown = (
        "posterior probability of positive selection per codon",
        "posterior mean beta - alpha per codon",
    )

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "grid": options.grid_points,
            "method": options.method,
            "concentration_parameter": options.concentration_parameter,
            "non-zero": options.non_zero,
        }
        # HyPhy asks for chain settings only for the samplers that use them
        if options.method == MH:
            args["chains"] = options.chains
        if options.method != VB:
            args["chain-length"] = options.chain_length
            args["burn-in"] = (
                options.chain_length // 2 if options.burn_in is None else options.burn_in
            )
            args["samples"] = options.samples
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        names = sites.headers(data)
        a, b = sites.column(names, "alpha"), sites.column(names, "beta")
        neg, pos = sites.column(names, "Prob[alpha>beta]"), sites.column(names, "Prob[alpha<beta]")
        bf = sites.column(names, "BayesFactor[alpha<beta]")
        threshold = float(options.posterior)

        def verdict(row: sites.Row) -> sites.Verdict:
            if number(row[pos]) >= threshold:
                return "positive"
            if number(row[neg]) >= threshold:
                return "negative"
            return "none"

        def fields(row: sites.Row) -> dict[str, Any]:
            return {
                "alpha": rounded(number(row[a])),
                "beta": rounded(number(row[b])),
                "prob_positive": rounded(number(row[pos])),
                "prob_negative": rounded(number(row[neg])),
                "bayes_factor_positive": rounded(number(row[bf])),
            }

        selection = sites.select_sites(data, verdict, fields)
        false_positives = 0.0
        for _, _, row in selection.positive_rows:
            false_positives += 1 - number(row[pos])
        test = f"posterior probability >= {threshold:g}"
        sequences, codons = input_counts(data)
        positive = selection.positive
        text = sites.selected_sites_text(
            self.name,
            positive,
            selection.negative,
            len(selection.series),
            test,
            "pervasive positive (diversifying)",
        )
        if positive:
            text += (
                f" About {false_positives:.2g} of the positive calls are expected to be false "
                "(the sum of 1 - posterior over them)."
            )
        return FubarSites(
            method=self.name,
            summary_text=text,
            caveats=self._caveats(data, len(positive)),
            sequences=sequences,
            codons=codons,
            test=test,
            **selection.selected_fields(),
            posterior_threshold=threshold,
            expected_false_positives=rounded(false_positives),
        )

    def _caveats(self, data: dict[str, Any], found: int) -> list[str]:
        caveats = sites.site_caveats(data, found)
        caveats.append(
            "Posterior probabilities are not p-values: they depend on the prior over the grid, "
            "and FUBAR assumes selection is constant across branches (pervasive); episodic "
            "selection on a few branches is better tested with MEME."
        )
        settings = data.get("settings", {})
        if isinstance(settings, dict) and settings.get("method") == VB:
            caveats.append(
                "Posteriors come from HyPhy's variational-Bayes approximation (its default); "
                "an MCMC estimator (method Collapsed-Gibbs or Metropolis-Hastings) is slower "
                "but converges to the exact posterior with long enough chains."
            )
        return caveats

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, FubarSites)
        values = sites.with_beta_minus_alpha(summary.sites)
        return [
            sites.site_plot(
                f"FUBAR: posterior probability of positive selection per codon ({summary.test})",
                values,
                "prob_positive",
                "Prob[beta > alpha]",
                y_scale={"domain": [0, 1]},
            ),
            sites.site_plot(
                "FUBAR: posterior mean beta - alpha per codon",
                values,
                "beta_minus_alpha",
                "beta - alpha",
            ),
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        table = sites.site_table(data)
        # HyPhy's FUBAR rows carry two unnamed trailing zeros; keep the named columns
        return Table(table.columns, [row[: len(table.columns)] for row in table.rows])


METHOD = Fubar()
