{#- Post-hook: an index on one column of the model's table unless one leads with that column already. Named by
    PostgreSQL, so that it never collides with the indexes of the table a full refresh is replacing. It serves
    the incremental int_touchpoints__touchpoints and int_touchpoints__click_spam, which look clicks up by link,
    visitor, ip and time. -#}
{% macro ensure_index(column) -%}
    do $$
    begin
        if not exists (
            select 1
            from pg_index as i
            inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
            where i.indrelid = '{{ this }}'::regclass and a.attname = '{{ column }}'
        ) then
            create index on {{ this }} ({{ column }});
        end if;
    end
    $$
{%- endmacro %}
