{#- URL helpers for partner codes (see docs/rules.md, Touchpoints and exclusions), following Python's
    urllib.parse: the query is what follows the first `?` up to `#`, pairs are split on `&`, `+` is a space
    and %XX escapes are decoded. -#}

{#- Percent-decoding of a query component (`+` -> space, %XX -> byte, the bytes read as UTF-8). -#}
{% macro attr_url_decode(expr) -%}
    (
        select convert_from(
            string_agg(
                case
                    when m.tok[1] ~ '^%[0-9A-Fa-f]{2}$' then decode(substr(m.tok[1], 2), 'hex')
                    else convert_to(m.tok[1], 'UTF8')
                end,
                ''::bytea order by m.ord
            ),
            'UTF8'
        )
        from regexp_matches(replace({{ expr }}, '+', ' '), '%[0-9A-Fa-f]{2}|[^%]+|%', 'g') with ordinality as m (tok, ord)
    )
{%- endmacro %}

{#- The first value of query parameter `name` in `url`, trimmed; blank values count as absent (like
    parse_qs, which drops them). Null when there is none. -#}
{% macro attr_query_param(url, name) -%}
    (
        select q.value
        from unnest(
            string_to_array(
                substring(split_part({{ url }}, '#', 1) from position('?' in split_part({{ url }}, '#', 1)) + 1),
                '&'
            )
        ) with ordinality as p (pair, ord)
        cross join lateral (
            select
                {{ attr_url_decode("split_part(p.pair, '=', 1)") }} as name,
                nullif(trim({{ attr_url_decode("substr(p.pair, strpos(p.pair, '=') + 1)") }}), '') as value
        ) as q
        where position('?' in split_part({{ url }}, '#', 1)) > 0
            and strpos(p.pair, '=') > 0
            and q.name = '{{ name }}'
            and q.value is not null
        order by p.ord
        limit 1
    )
{%- endmacro %}
