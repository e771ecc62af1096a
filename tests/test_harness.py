import boto3
import psycopg


def test_fresh_database_has_schemas(warehouse_url):
    with psycopg.connect(warehouse_url) as conn:
        schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata")}
    assert {"raw", "rules", "controls", "payouts"} <= schemas


def test_s3_endpoint_is_real_http(s3_bucket, s3_endpoint):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"x")
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"x"
    assert s3.meta.endpoint_url == s3_endpoint
